/* Fleet delivery: a domain's bundle (chain and key as JSON) and the SNI lookup that proxies such
 * as Caddy's get_certificate http call during handshakes. Both answer from the delivery index
 * alone (api/index.h), never from the store, with a body rendered once per certificate and kept
 * in the index entry, handed to MHD without copying: the response keeps a reference on the entry
 * and drops it when MHD is done with it. */
#include "api/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/index.h"
#include "common/jsonutil.h"
#include "common/names.h"

/* ---- entity tags (RFC 9110 §8.8.3, §13.1.2) ---- */

struct inm_scan {
    const char *etag;
    bool match;
};

/* True when the field value LIST (an If-None-Match value) names ETAG or is "*". The comparison
 * is weak (§8.8.3.2): a W/ prefix is ignored. */
static bool etag_list_has(const char *list, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"') {
            /* Not an entity-tag: skip this list member. */
            p += strcspn(p, ",");
            continue;
        }
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        size_t len = (size_t)(end - p) + 1;
        if (len == elen && memcmp(p, etag, len) == 0)
            return true;
        p = end + 1;
    }
    return false;
}

static enum MHD_Result inm_scan_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct inm_scan *s = cls;
    if (key && value && strcasecmp(key, MHD_HTTP_HEADER_IF_NONE_MATCH) == 0 &&
        etag_list_has(value, s->etag)) {
        s->match = true;
        return MHD_NO;
    }
    return MHD_YES;
}

bool api_if_none_match(struct api_request *req, const char *etag)
{
    /* Every If-None-Match field counts: a list may be split over several (RFC 9110 §5.3). */
    struct inm_scan s = {.etag = etag};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, inm_scan_one, &s);
    return s.match;
}

/* Adds the headers every delivery answer carries, queues RESP with STATUS and lets go of it. */
static enum MHD_Result queue_tagged(struct api_request *req, unsigned status,
                                    struct MHD_Response *resp, const char *ctype, const char *etag)
{
    if (!resp)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    /* Keys and certificates change under the caller: never kept by a shared cache. Clients
     * revalidate with If-None-Match instead. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* 304 (RFC 9110 §15.4.5): no body, the same ETag. */
static enum MHD_Result respond_not_modified(struct api_request *req, const char *etag)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    return queue_tagged(req, MHD_HTTP_NOT_MODIFIED, resp, NULL, etag);
}

enum MHD_Result api_respond_tagged(struct api_request *req, const char *text, const char *ctype,
                                   const char *etag)
{
    if (api_if_none_match(req, etag))
        return respond_not_modified(req, etag);
    /* The key endpoint sends private keys through here: a copy wiped after sending. */
    struct MHD_Response *resp = api_response_wiped(text, strlen(text));
    if (!resp)
        return MHD_NO;
    return queue_tagged(req, MHD_HTTP_OK, resp, ctype, etag);
}

/* ---- scope ---- */

/* index_visible_fn: the caller's scope (api_caller_sees) over the entry's primary and served
 * names. */
static bool entry_visible(const struct index_entry *e, void *ctx)
{
    const struct api_caller *caller = ctx;
    if (!caller->scope_count)
        return true;
    const char *names[NAMES_MAX + 1];
    size_t count, n = 0;
    const char *const *served = index_entry_names(e, &count);
    names[n++] = index_entry_primary(e);
    for (size_t i = 0; i < count && n < NAMES_MAX + 1; i++)
        names[n++] = served[i];
    return api_caller_sees(caller, names, n);
}

/* ---- bodies (index_entry_body renderers) ---- */

/* Leaf first, then the intermediates, then the key: what Caddy's PEM bundle parser and
 * nginx/HAProxy's combined files take. */
static char *render_sni(const struct index_entry *e)
{
    size_t chain_len, key_len;
    const char *chain = index_entry_chain_pem(e, &chain_len);
    /* Reached only through a lookup the router and the scope check let through. */
    const char *key = index_entry_secret(e, INDEX_SECRET_KEY_PEM, &key_len);
    char *body = malloc(chain_len + key_len + 1);
    if (!body)
        return NULL;
    memcpy(body, chain, chain_len);
    memcpy(body + chain_len, key, key_len);
    body[chain_len + key_len] = '\0';
    return body;
}

/* Everything of the bundle but the key, as a JSON object. Not secret. */
static char *bundle_meta(const struct index_entry *e)
{
    size_t count, chain_len;
    const char *const *names = index_entry_names(e, &count);
    const char *chain = index_entry_chain_pem(e, &chain_len);
    json_t *jnames = json_array();
    for (size_t i = 0; jnames && i < count; i++)
        json_array_append_new(jnames, json_string(names[i]));
    const char *issuer = index_entry_issuer(e);
    json_t *o = json_pack("{s:s, s:o, s:s, s:s?, s:o, s:o, s:s, s:I, s:s%, s:s}", "name",
                          index_entry_primary(e), "names", jnames ? jnames : json_array(), "serial",
                          index_entry_serial(e), "issuer", issuer, "not_before",
                          json_time_or_null(index_entry_not_before(e)), "not_after",
                          json_time_or_null(index_entry_not_after(e)), "fingerprint_sha256",
                          index_entry_fingerprint(e), "key_id", (json_int_t)index_entry_key_id(e),
                          "fullchain", chain, chain_len, "etag", index_entry_etag(e));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    return text;
}

/* KEY as a JSON string literal (quotes included, *LEN its length), escaped by jansson straight
 * into a buffer of ours: wipe it after use. jansson's own copy of the key is wiped before it is
 * freed. NULL on failure. */
static char *key_literal(const char *key, size_t key_len, size_t *len)
{
    json_t *s = json_stringn(key, key_len);
    size_t need = s ? json_dumpb(s, NULL, 0, JSON_ENCODE_ANY) : 0;
    char *out = need ? malloc(need + 1) : NULL;
    if (out && json_dumpb(s, out, need, JSON_ENCODE_ANY) == need) {
        out[need] = '\0';
        *len = need;
    } else if (out) {
        explicit_bzero(out, need);
        free(out);
        out = NULL;
    }
    if (s)
        explicit_bzero((char *)json_string_value(s), json_string_length(s));
    json_decref(s);
    return out;
}

/* The metadata object with the key spliced in as its last member (the key never passes through
 * a jansson object that json_dumps would copy around). */
static char *render_bundle(const struct index_entry *e)
{
    static const char key_member[] = ",\"private_key\":";
    static const char tail[] = "}\n";
    char *meta = bundle_meta(e);
    size_t meta_len = meta ? strlen(meta) : 0, lit_len = 0, pem_len;
    char *body = NULL, *lit = NULL;
    if (meta_len < 2 || meta[meta_len - 1] != '}')
        goto out;
    const char *pem = index_entry_secret(e, INDEX_SECRET_KEY_PEM, &pem_len);
    if (!(lit = key_literal(pem, pem_len, &lit_len)))
        goto out;
    size_t head = meta_len - 1; /* without its closing brace */
    size_t len = head + sizeof(key_member) - 1 + lit_len + sizeof(tail) - 1;
    if (!(body = malloc(len + 1)))
        goto out;
    char *p = body;
    memcpy(p, meta, head);
    p += head;
    memcpy(p, key_member, sizeof(key_member) - 1);
    p += sizeof(key_member) - 1;
    memcpy(p, lit, lit_len);
    p += lit_len;
    memcpy(p, tail, sizeof(tail)); /* with its NUL */
out:
    if (lit) {
        explicit_bzero(lit, lit_len);
        free(lit);
    }
    free(meta);
    return body;
}

static void release_entry(void *cls)
{
    index_entry_put(cls);
}

/* Answers 200 with E's body WHAT (or 304 when the client has it), the response holding E's
 * reference (taken over from the caller) as long as MHD needs the bytes. */
static enum MHD_Result respond_entry(struct api_request *req, struct index_entry *e,
                                     enum index_body what,
                                     char *(*render)(const struct index_entry *), const char *ctype)
{
    const char *etag = index_entry_etag(e);
    if (api_if_none_match(req, etag)) {
        enum MHD_Result rc = respond_not_modified(req, etag);
        index_entry_put(e);
        return rc;
    }
    size_t len;
    const char *body = index_entry_body(e, what, render, &len);
    if (!body) {
        index_entry_put(e);
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot render the answer");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)body, release_entry, e);
    if (!resp) {
        index_entry_put(e);
        return MHD_NO;
    }
    /* ETAG points into the entry, which RESP keeps alive. */
    return queue_tagged(req, MHD_HTTP_OK, resp, ctype, etag);
}

/* ---- GET /v1/domains/{name}/bundle ---- */

enum MHD_Result h_domain_bundle(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    char name[NAME_BUF_SIZE], err[NAME_ERR_SIZE];
    if (name_normalize(param, true, name, err) < 0)
        return api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", param, "name '%s': %s",
                                       param, err);
    if (!req->ctx->index)
        return api_respond_problem(req, PROBLEM_UNAVAILABLE, "the delivery index is not running");
    struct index_entry *e = index_lookup_domain(req->ctx->index, name);
    /* Out of scope answers exactly like absent, so names do not leak. */
    if (!e || !entry_visible(e, &req->caller)) {
        index_entry_put(e);
        return api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", name,
                                       "no certificate for %s", name);
    }
    /* Authorised: the router required a deployer and the scope covers the domain. */
    return respond_entry(req, e, INDEX_BODY_BUNDLE, render_bundle, "application/json");
}

/* ---- GET /v1/sni?server_name=HOST ---- */

enum MHD_Result h_sni(struct api_request *req, const char *param)
{
    /* Caddy's get_certificate http adds the last two to every call (its own parameters in the
     * configured URL would have to be listed here too). */
    static const char *const allowed[] = {"server_name", "signature_schemes", "cipher_suites",
                                          NULL};
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, allowed, &rc))
        return rc;
    const char *server_name = api_query(req, "server_name");
    if (!server_name)
        return api_respond_problem_ext(req, PROBLEM_MALFORMED, "parameter", "server_name",
                                       "query parameter 'server_name' is required");
    /* A client that sent no SNI (or an IP address, which Caddy passes as empty): nothing can be
     * chosen for it, like a name without a certificate. */
    if (!server_name[0])
        return api_respond_problem(req, PROBLEM_NOT_FOUND, "no certificate for an empty name");
    char host[NAME_BUF_SIZE];
    if (index_sni_normalize(server_name, host) < 0)
        return api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", server_name,
                                       "server_name is not a DNS name");
    if (!req->ctx->index)
        return api_respond_problem(req, PROBLEM_UNAVAILABLE, "the delivery index is not running");
    struct index_entry *e = index_lookup_sni(req->ctx->index, host, entry_visible, &req->caller);
    if (!e)
        return api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", host,
                                       "no certificate for %s", host);
    /* Authorised: the router required a deployer and the scope covers the entry. */
    return respond_entry(req, e, INDEX_BODY_SNI, render_sni, "application/x-pem-file");
}
