#include "acme/order.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme/client.h"
#include "acme/responders.h"
#include "common/jsonutil.h"
#include "common/types.h"
#include "core/config.h"
#include "core/log.h"
#include "core/testhook.h"
#include "crypto/b64url.h"
#include "crypto/certinfo.h"
#include "crypto/csr.h"
#include "crypto/keys.h"
#include "crypto/signer.h"
#include "store/store.h"

/* Polling (RFC 8555 §7.5.1): the first look comes soon, since a CA like Pebble validates in
 * milliseconds, then backs off; a CA's Retry-After wins within the cap. */
#define POLL_FIRST_MS 250
#define POLL_MAX_MS 5000
#define POLL_RETRY_AFTER_CAP_MS 60000
#define POLL_TOTAL_MS (10 * 60 * 1000)

struct run {
    const struct acme_order_env *env;
    struct acme_order_result *res;
    struct store_domain *domain;
    struct store_order *order;
    json_t *names;            /* array of the ordered names */
    json_t *ca_order;         /* the CA's latest view of the order */
    struct acme_error err;
};

/* "base64url(AKI keyIdentifier).base64url(serial)", the certificate's ARI CertID (RFC 9773
 * §4.1), or NULL without an AKI. */
static char *ari_cert_id(const struct cert_info *ci)
{
    if (!ci->aki_len || !ci->serial_der_len)
        return NULL;
    char *a = b64url_encode(ci->aki, ci->aki_len);
    char *b = b64url_encode(ci->serial_der, ci->serial_der_len);
    char *out = NULL;
    if (a && b) {
        size_t len = strlen(a) + 1 + strlen(b) + 1;
        if ((out = malloc(len)))
            snprintf(out, len, "%s.%s", a, b);
    }
    free(a);
    free(b);
    return out;
}

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->res->error, sizeof(r->res->error), fmt, ap);
    va_end(ap);
    r->res->outcome = ORDER_FAILED;
}

/* Fails with what the last ACME exchange left in r->err, keeping the CA's problem on the order. */
static void fail_acme(struct run *r, const char *what)
{
    fail(r, "%s: %s", what, r->err.message[0] ? r->err.message : "failed");
    r->res->retry_after = r->err.retry_after;
    if (r->err.problem && r->order) {
        free(r->order->error_json);
        r->order->error_json = json_dumps(r->err.problem, JSON_COMPACT);
    }
}

static const char *ca_status(const json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "status"));
    return s ? s : "";
}

/* Persists the order row as it stands. Failing to record a step is not fatal: resuming asks
 * the CA anyway. */
static void save(struct run *r, const char *step)
{
    if (step) {
        free(r->order->step);
        r->order->step = strdup(step);
    }
    if (r->ca_order) {
        const char *status = ca_status(r->ca_order);
        if (*status) {
            free(r->order->status);
            r->order->status = strdup(status);
        }
        const char *fin = json_string_value(json_object_get(r->ca_order, "finalize"));
        if (fin && (!r->order->finalize_url || strcmp(fin, r->order->finalize_url) != 0)) {
            free(r->order->finalize_url);
            r->order->finalize_url = strdup(fin);
        }
        const char *cert = json_string_value(json_object_get(r->ca_order, "certificate"));
        if (cert && !r->order->certificate_url)
            r->order->certificate_url = strdup(cert);
        int64_t exp;
        if (json_time_parse(json_string_value(json_object_get(r->ca_order, "expires")), &exp) == 0)
            r->order->expires_at = exp;
    }
    if (store_order_update(r->env->store, r->order, NULL) < 0)
        log_warning("order %lld: cannot record step %s", (long long)r->order->id,
                    step ? step : "(status)");
}

static bool nap(struct run *r, unsigned ms)
{
    if (r->env->sleep(r->env->sleep_ctx, ms))
        return true;
    r->res->outcome = ORDER_INTERRUPTED;
    return false;
}

/* POST-as-GET of URL into *OUT (JSON). */
static int fetch_json(struct run *r, const char *url, json_t **out)
{
    struct acme_http_response resp;
    int rc = acme_client_post(r->env->client, url, NULL, NULL, &resp, out, &r->err);
    if (rc == 0) {
        acme_http_response_free(&resp);
        if (!*out) {
            snprintf(r->err.message, sizeof(r->err.message), "CA %s sent no JSON for %s",
                     acme_client_name(r->env->client), url);
            return -EPROTO;
        }
    }
    return rc;
}

static int refresh_order(struct run *r)
{
    json_t *o = NULL;
    int rc = fetch_json(r, r->order->url, &o);
    if (rc < 0)
        return rc;
    json_decref(r->ca_order);
    r->ca_order = o;
    save(r, NULL);
    return 0;
}

/* Polls the order while its status is WHILE_STATUS, with backoff. 0 when it moved on. */
static int poll_order(struct run *r, const char *while_status)
{
    unsigned delay = POLL_FIRST_MS, waited = 0;
    while (strcmp(ca_status(r->ca_order), while_status) == 0) {
        unsigned ms = delay;
        if (r->err.retry_after > 0)
            ms = r->err.retry_after * 1000 > POLL_RETRY_AFTER_CAP_MS
                     ? POLL_RETRY_AFTER_CAP_MS
                     : (unsigned)r->err.retry_after * 1000;
        if (waited >= POLL_TOTAL_MS) {
            fail(r, "the order stayed %s for %u s", while_status, waited / 1000);
            return -ETIMEDOUT;
        }
        if (!nap(r, ms))
            return -EINTR;
        waited += ms;
        r->err.retry_after = -1;
        if (refresh_order(r) < 0) {
            fail_acme(r, "cannot poll the order");
            return -EIO;
        }
        delay = delay * 2 > POLL_MAX_MS ? POLL_MAX_MS : delay * 2;
    }
    return 0;
}

/* ---- newOrder ---- */

static int new_order(struct run *r)
{
    const char *url = acme_client_dir_url(r->env->client, "newOrder", &r->err);
    if (!url) {
        fail_acme(r, "cannot create the order");
        return -EIO;
    }
    json_t *ids = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(r->names, i, n)
    {
        json_array_append_new(ids, json_pack("{s:s, s:O}", "type", "dns", "value", n));
    }
    json_t *payload = json_pack("{s:o}", "identifiers", ids);
    if (payload && r->domain->profile)
        json_object_set_new(payload, "profile", json_string(r->domain->profile));
    struct acme_http_response resp;
    json_t *o = NULL;
    int rc;
    for (int attempt = 0;; attempt++) {
        /* RFC 9773 §5: name the certificate this order replaces. */
        if (r->order->replaces)
            json_object_set_new(payload, "replaces", json_string(r->order->replaces));
        else
            json_object_del(payload, "replaces");
        rc = acme_client_post(r->env->client, url, payload, NULL, &resp, &o, &r->err);
        /* Someone (a previous run of ours that crashed, or an operator) already replaced it:
         * order as a plain renewal. */
        if (rc == -EPROTO && attempt == 0 && r->order->replaces &&
            acme_error_is(&r->err, "alreadyReplaced")) {
            log_notice("%s: CA says certificate %s was already replaced; ordering without "
                       "\"replaces\"", r->domain->name, r->order->replaces);
            free(r->order->replaces);
            r->order->replaces = NULL;
            acme_http_response_free(&resp);
            acme_error_clear(&r->err);
            continue;
        }
        break;
    }
    json_decref(payload);
    if (rc < 0) {
        fail_acme(r, "newOrder refused");
        return rc;
    }
    if (!resp.location || !o) {
        acme_http_response_free(&resp);
        json_decref(o);
        fail(r, "newOrder answered without an order URL");
        return -EPROTO;
    }
    free(r->order->url);
    r->order->url = resp.location;
    resp.location = NULL;
    acme_http_response_free(&resp);
    json_decref(r->ca_order);
    r->ca_order = o;
    save(r, "ordered");
    log_info("%s: order %s is %s", r->domain->name, r->order->url, ca_status(o));
    testhook_crash_point("after_neworder");
    return 0;
}

/* ---- authorizations and challenges (RFC 8555 §7.5, §8) ---- */

/* The key authorisation (§8.1): token "." base64url(JWK thumbprint). */
static char *key_authorization(struct run *r, const char *token)
{
    char tp[44];
    if (acme_client_thumbprint(r->env->client, tp, &r->err) < 0)
        return NULL;
    size_t len = strlen(token) + 1 + strlen(tp) + 1;
    char *ka = malloc(len);
    if (ka)
        snprintf(ka, len, "%s.%s", token, tp);
    return ka;
}

/* The dns-01 TXT value (§8.4): base64url(SHA-256(key authorisation)). */
static char *dns01_value(const char *key_auth)
{
    uint8_t digest[32];
    crypto_sha256(key_auth, strlen(key_auth), digest);
    return b64url_encode(digest, sizeof(digest));
}

/* Whether the store already records this exact response for this order. */
static bool challenge_recorded(struct run *r, const struct store_challenge *want)
{
    struct store_challenge **list = NULL;
    size_t n = 0;
    bool found = false;
    if (store_challenge_list(r->env->store, r->order->id, &list, &n) < 0)
        return false;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(list[i]->type, want->type) == 0 &&
                strcmp(list[i]->identifier, want->identifier) == 0 &&
                strcmp(list[i]->token, want->token) == 0;
    store_challenge_list_free(list, n);
    return found;
}

/* Publishes the response to one challenge and records it first, so a crash between the two
 * leaves a record to clean up rather than a record-less DNS entry. */
static int publish(struct run *r, enum challenge_type type, const char *ident, bool wildcard,
                   const char *token)
{
    const struct config *cfg = r->env->config;
    char *ka = key_authorization(r, token);
    char *value = NULL, fqdn[300], hook_err[1024];
    int rc = -EIO;
    if (!ka) {
        fail_acme(r, "cannot compute the key authorisation");
        return -EIO;
    }
    bool recorded = false;
    struct store_challenge rec = {.order_id = r->order->id,
                                  .type = (char *)challenge_type_name(type),
                                  .identifier = (char *)ident, .token = (char *)token,
                                  .key_authorization = ka};
    if (type == CHALLENGE_DNS_01) {
        snprintf(fqdn, sizeof(fqdn), "_acme-challenge.%s.", ident);
        if (!(value = dns01_value(ka)))
            goto out;
        rec.identifier = fqdn;
        rec.key_authorization = value;
    }
    /* Resuming after a restart: what the store records is still published at the CA's end
     * (DNS) or only needs to be put back in memory (http-01, tls-alpn-01). */
    recorded = challenge_recorded(r, &rec);
    switch (type) {
    case CHALLENGE_HTTP_01:
        if ((!recorded && store_challenge_add(r->env->store, &rec, NULL) < 0) ||
            responders_http01_add(r->env->responders, token, ka) < 0) {
            fail(r, "%s: cannot publish the http-01 response", ident);
            goto out;
        }
        break;
    case CHALLENGE_TLS_ALPN_01:
        if (!responders_have_tlsalpn01(r->env->responders)) {
            fail(r, "%s: tls-alpn-01 needs [challenge.tls-alpn-01] listen", ident);
            r->res->permanent = true;
            goto out;
        }
        if ((!recorded && store_challenge_add(r->env->store, &rec, NULL) < 0) ||
            responders_tlsalpn01_add(r->env->responders, ident, ka) < 0) {
            fail(r, "%s: cannot publish the tls-alpn-01 certificate", ident);
            goto out;
        }
        break;
    case CHALLENGE_DNS_01:
        if (!cfg->challenge.dns01_hook) {
            fail(r, "%s: dns-01 needs [challenge.dns-01] hook", ident);
            r->res->permanent = true;
            goto out;
        }
        (void)wildcard; /* a wildcard's record lives at its base name, as IDENT already is */
        if (recorded)
            break; /* published before the restart; a second copy upsets some DNS servers */
        if (store_challenge_add(r->env->store, &rec, NULL) < 0) {
            fail(r, "%s: cannot record the dns-01 response", ident);
            goto out;
        }
        if (responders_dns01_run(cfg->challenge.dns01_hook, cfg->challenge.dns01_timeout, "add",
                                 fqdn, value, hook_err, sizeof(hook_err)) < 0) {
            fail(r, "%s: %s", ident, hook_err);
            goto out;
        }
        break;
    default:
        goto out;
    }
    rc = 0;
out:
    free(ka);
    free(value);
    return rc;
}

/* Describes why an invalid authorization failed, from its challenges' errors. */
static void fail_authz(struct run *r, const json_t *authz)
{
    const char *ident = json_string_value(json_object_get(json_object_get(authz, "identifier"),
                                                          "value"));
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(authz, "challenges"), i, ch)
    {
        json_t *e = json_object_get(ch, "error");
        if (!json_is_object(e))
            continue;
        fail(r, "%s: %s validation failed: %s (%s)", ident ? ident : "?",
             json_string_value(json_object_get(ch, "type")),
             json_string_value(json_object_get(e, "detail")),
             json_string_value(json_object_get(e, "type")));
        free(r->order->error_json);
        r->order->error_json = json_dumps(e, JSON_COMPACT);
        return;
    }
    fail(r, "%s: authorization is %s", ident ? ident : "?", ca_status(authz));
}

static int satisfy_authorizations(struct run *r)
{
    enum challenge_type want;
    if (!challenge_type_parse(r->domain->challenge, &want))
        want = CHALLENGE_HTTP_01;
    json_t *to_answer = json_array();
    bool any_dns = false;
    int rc = 0;
    size_t i;
    json_t *url;
    json_array_foreach(json_object_get(r->ca_order, "authorizations"), i, url)
    {
        json_t *authz = NULL;
        if ((rc = fetch_json(r, json_string_value(url), &authz)) < 0) {
            fail_acme(r, "cannot read an authorization");
            break;
        }
        const char *st = ca_status(authz);
        if (strcmp(st, "valid") == 0) {
            json_decref(authz);
            continue;
        }
        if (strcmp(st, "pending") != 0) {
            fail_authz(r, authz);
            json_decref(authz);
            rc = -EPROTO;
            break;
        }
        const json_t *id = json_object_get(authz, "identifier");
        const char *ident = json_string_value(json_object_get(id, "value"));
        bool wildcard = json_is_true(json_object_get(authz, "wildcard"));
        const json_t *chosen = NULL;
        size_t j;
        json_t *ch;
        json_array_foreach(json_object_get(authz, "challenges"), j, ch)
        {
            const char *type = json_string_value(json_object_get(ch, "type"));
            if (type && strcmp(type, challenge_type_name(want)) == 0)
                chosen = ch;
        }
        if (!chosen || !ident) {
            fail(r, "%s: the CA offers no %s challenge", ident ? ident : "?",
                 challenge_type_name(want));
            r->res->permanent = true;
            json_decref(authz);
            rc = -EPROTO;
            break;
        }
        const char *token = json_string_value(json_object_get(chosen, "token"));
        const char *ch_status = ca_status(chosen);
        if (!token || (rc = publish(r, want, ident, wildcard, token)) < 0) {
            if (!token)
                fail(r, "%s: challenge without a token", ident);
            json_decref(authz);
            rc = -EPROTO;
            break;
        }
        any_dns |= want == CHALLENGE_DNS_01;
        /* A challenge already "processing" was answered before a restart: publishing again is
         * all it needs. */
        if (strcmp(ch_status, "pending") == 0)
            json_array_append(to_answer, json_object_get(chosen, "url"));
        json_decref(authz);
    }
    testhook_crash_point("after_publish");
    if (rc == 0 && any_dns && r->env->config->challenge.dns01_propagation_wait &&
        !nap(r, r->env->config->challenge.dns01_propagation_wait * 1000))
        rc = -EINTR;
    json_array_foreach(rc == 0 ? to_answer : NULL, i, url)
    {
        /* RFC 8555 §7.5.1: an empty object asks the CA to validate. */
        json_t *empty = json_object();
        struct acme_http_response resp;
        rc = acme_client_post(r->env->client, json_string_value(url), empty, NULL, &resp, NULL,
                              &r->err);
        json_decref(empty);
        if (rc < 0) {
            fail_acme(r, "the CA refused a challenge response");
            break;
        }
        acme_http_response_free(&resp);
    }
    json_decref(to_answer);
    if (rc == 0) {
        save(r, "responded");
        testhook_crash_point("after_respond");
    }
    return rc;
}

/* ---- finalize and download ---- */

static int finalize(struct run *r)
{
    struct store_key *key = NULL;
    const char **names = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0, n = json_array_size(r->names);
    char *csr64 = NULL;
    int rc = -EIO;

    if (store_key_get_pem(r->env->store, r->order->key_id, &key) < 0) {
        fail(r, "the order's private key is missing from the store");
        goto out;
    }
    if (!(names = calloc(n, sizeof(*names))))
        goto out;
    for (size_t i = 0; i < n; i++)
        names[i] = json_string_value(json_array_get(r->names, i));
    if (csr_create(key->pem, names, n, &der, &der_len) < 0 ||
        !(csr64 = b64url_encode(der, der_len))) {
        fail(r, "cannot make the CSR");
        goto out;
    }
    json_t *payload = json_pack("{s:s}", "csr", csr64);
    json_t *o = NULL;
    struct acme_http_response resp;
    rc = acme_client_post(r->env->client, r->order->finalize_url, payload, NULL, &resp, &o,
                          &r->err);
    json_decref(payload);
    if (rc < 0) {
        /* A finalize repeated after a restart finds the order already processing or valid. */
        if (acme_error_is(&r->err, "orderNotReady") && refresh_order(r) == 0 &&
            strcmp(ca_status(r->ca_order), "ready") != 0) {
            acme_error_clear(&r->err);
            rc = 0;
            goto out;
        }
        fail_acme(r, "finalize refused");
        goto out;
    }
    acme_http_response_free(&resp);
    if (o) {
        json_decref(r->ca_order);
        r->ca_order = o;
    }
    save(r, "finalized");
    testhook_crash_point("after_finalize");
    rc = 0;
out:
    store_key_free(key);
    free(names);
    free(der);
    free(csr64);
    return rc;
}

/* True when the chain's names are exactly the ordered ones (any order). */
static bool names_equal(const struct cert_info *ci, const json_t *names)
{
    if (ci->name_count != json_array_size(names))
        return false;
    for (size_t i = 0; i < ci->name_count; i++) {
        bool found = false;
        for (size_t j = 0; j < json_array_size(names) && !found; j++)
            found = strcmp(ci->names[i], json_string_value(json_array_get(names, j))) == 0;
        if (!found)
            return false;
    }
    return true;
}

static bool chain_preferred(const struct cert_info *ci, const char *preferred)
{
    return (ci->root_issuer_cn && strcmp(ci->root_issuer_cn, preferred) == 0) ||
           (ci->issuer_cn && strcmp(ci->issuer_cn, preferred) == 0);
}

/* Downloads a chain (RFC 8555 §7.4.2) and inspects it. */
static int download_chain(struct run *r, const char *url, char **pem, struct cert_info *ci,
                          struct acme_http_response *resp)
{
    char why[256];
    if (acme_client_post(r->env->client, url, NULL, "application/pem-certificate-chain", resp,
                         NULL, &r->err) < 0)
        return -EIO;
    if (!resp->body || cert_chain_inspect(resp->body, ci, why, sizeof(why)) < 0) {
        snprintf(r->err.message, sizeof(r->err.message), "the CA sent an unusable chain: %s",
                 resp->body ? why : "empty body");
        acme_http_response_free(resp);
        return -EPROTO;
    }
    *pem = resp->body;
    resp->body = NULL;
    return 0;
}

static int download_and_store(struct run *r)
{
    const struct config_ca *ca = config_find_ca(r->env->config, r->order->ca);
    const char *preferred = ca ? ca->preferred_chain : NULL;
    struct acme_http_response resp;
    struct cert_info ci = {0};
    char *pem = NULL;
    struct store_key *key = NULL;
    int rc;

    if (!r->order->certificate_url) {
        fail(r, "the order is valid but names no certificate");
        return -EPROTO;
    }
    if ((rc = download_chain(r, r->order->certificate_url, &pem, &ci, &resp)) < 0) {
        fail_acme(r, "cannot download the certificate");
        return rc;
    }
    /* RFC 8555 §7.4.2: other chains to other roots are offered as Link rel="alternate". */
    if (preferred && !chain_preferred(&ci, preferred)) {
        for (size_t i = 0; i < resp.link_alternate_count; i++) {
            struct acme_http_response alt_resp;
            struct cert_info alt = {0};
            char *alt_pem = NULL;
            if (download_chain(r, resp.link_alternate[i], &alt_pem, &alt, &alt_resp) < 0)
                continue;
            acme_http_response_free(&alt_resp);
            if (chain_preferred(&alt, preferred) &&
                strcmp(alt.fingerprint_sha256, ci.fingerprint_sha256) == 0) {
                cert_info_free(&ci);
                free(pem);
                ci = alt;
                pem = alt_pem;
                log_info("%s: using the alternate chain to %s", r->domain->name, preferred);
                break;
            }
            cert_info_free(&alt);
            free(alt_pem);
        }
    }
    acme_http_response_free(&resp);

    /* Verify before storing: our key, exactly our names, a chain that holds together. */
    rc = -EPROTO;
    if (store_key_get_pem(r->env->store, r->order->key_id, &key) < 0) {
        fail(r, "the order's key is missing");
        goto out;
    }
    if (strcmp(ci.spki_sha256, key->public_key_sha256) != 0) {
        fail(r, "the CA's certificate is not for our key");
        goto out;
    }
    if (!names_equal(&ci, r->names)) {
        fail(r, "the CA's certificate does not cover exactly the ordered names");
        goto out;
    }
    if (ci.chain_length < 2) {
        fail(r, "the CA sent the certificate without its issuer");
        goto out;
    }
    testhook_crash_point("before_store");

    struct store_cert c = {.domain_id = r->domain->id, .key_id = r->order->key_id,
                           .order_id = r->order->id, .serial = ci.serial,
                           .not_before = ci.not_before, .not_after = ci.not_after,
                           .issuer = ci.issuer_dn, .fingerprint_sha256 = ci.fingerprint_sha256,
                           .chain_pem = pem};
    int64_t renew_at = r->env->plan(r->env->plan_ctx, r->domain, &c);
    /* RFC 9773: with a CA that offers renewal information, ask for it from now on. */
    if (acme_client_has_ari(r->env->client) && (c.ari_id = ari_cert_id(&ci)))
        c.ari_next_check = c.not_before > 0 ? c.not_before : 1;
    struct store_cert *prev = NULL;
    r->res->renewed = store_cert_current(r->env->store, r->domain->id, &prev) == 0;
    store_cert_free(prev);
    char nb[JSON_TIME_SIZE], na[JSON_TIME_SIZE];
    json_time_format(ci.not_before, nb);
    json_time_format(ci.not_after, na);
    json_t *detail = json_pack("{s:s, s:s, s:s, s:s, s:O}", "serial", ci.serial, "not_before", nb,
                               "not_after", na, "fingerprint_sha256", ci.fingerprint_sha256,
                               "names", r->names);
    char *detail_text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    struct store_event_in ev = {.type = r->res->renewed ? "certificate.renewed"
                                                        : "certificate.issued",
                                .domain = r->domain->name, .actor = r->env->actor,
                                .detail_json = detail_text};
    rc = store_cert_add(r->env->store, &c, renew_at, &ev, &r->res->cert_id);
    free(detail_text);
    free(c.ari_id);
    if (rc < 0) {
        fail(r, "cannot store the certificate");
        goto out;
    }
    testhook_crash_point("after_store");
    log_notice("%s: certificate %s issued, valid until %s", r->domain->name, ci.serial, na);
    r->res->outcome = ORDER_ISSUED;
    rc = 0;
out:
    store_key_free(key);
    cert_info_free(&ci);
    free(pem);
    return rc;
}

/* ---- the run ---- */

/*
 * A renewal gets a fresh key unless the domain keeps its key (reuse_key): the current key is
 * replaced when it is the one the active certificate uses. A key made for an order that then
 * failed is not replaced again: it was never used.
 */
static int rotate_key(struct run *r, const struct store_cert *prev, struct store_key **key)
{
    if (!prev || r->domain->reuse_key || prev->key_id != (*key)->id)
        return 0;
    enum key_type kt;
    char *pem = NULL, sha[KEY_FINGERPRINT_SIZE];
    if (!key_type_parse(r->domain->key_type, &kt))
        kt = KEY_EC_P256;
    if (keys_generate(kt, &pem, sha) < 0) {
        fail(r, "cannot generate a new %s key", key_type_name(kt));
        return -EIO;
    }
    struct store_key k = {.key_type = (char *)key_type_name(kt), .pem = pem,
                          .public_key_sha256 = sha};
    char detail[160];
    snprintf(detail, sizeof(detail), "{\"reason\":\"renewal\",\"key_sha256\":\"%s\"}", sha);
    struct store_event_in ev = {.type = "key.generated", .domain = r->domain->name,
                                .actor = r->env->actor, .detail_json = detail};
    int64_t id = 0;
    int rc = store_key_add(r->env->store, r->domain->id, &k, &ev, &id);
    keys_pem_free(pem);
    if (rc < 0) {
        fail(r, "cannot store the new key");
        return rc;
    }
    store_key_free(*key);
    *key = NULL;
    return store_key_current(r->env->store, r->domain->id, key);
}

static int start_order(struct run *r)
{
    struct store_key *key = NULL;
    struct store_cert *prev = NULL;
    if (store_key_current(r->env->store, r->domain->id, &key) < 0) {
        fail(r, "the domain has no private key");
        return -ENOENT;
    }
    if (store_cert_current(r->env->store, r->domain->id, &prev) < 0)
        prev = NULL;
    /* A profile the CA does not offer fails here, before any order exists. */
    if (r->domain->profile) {
        int has = acme_client_has_profile(r->env->client, r->domain->profile, &r->err);
        if (has <= 0) {
            if (has < 0)
                fail_acme(r, "cannot check the CA's profiles");
            else
                fail(r, "CA %s does not offer the profile '%s'", r->domain->ca,
                     r->domain->profile);
            r->res->permanent = has == 0;
            store_key_free(key);
            store_cert_free(prev);
            return -EINVAL;
        }
    }
    int rc = rotate_key(r, prev, &key);
    if (rc < 0) {
        store_key_free(key);
        store_cert_free(prev);
        return rc;
    }
    json_decref(r->names);
    r->names = json_array();
    json_array_append_new(r->names, json_string(r->domain->name));
    for (size_t i = 0; i < r->domain->alt_count; i++)
        json_array_append_new(r->names, json_string(r->domain->alt_names[i]));

    store_order_free(r->order);
    r->order = calloc(1, sizeof(*r->order));
    if (!r->order) {
        store_key_free(key);
        return -ENOMEM;
    }
    r->order->domain_id = r->domain->id;
    r->order->ca = strdup(r->domain->ca);
    r->order->key_id = key->id;
    r->order->status = strdup("new");
    r->order->names_json = json_dumps(r->names, JSON_COMPACT);
    if (prev && prev->ari_id && acme_client_has_ari(r->env->client))
        r->order->replaces = strdup(prev->ari_id);
    store_key_free(key);
    store_cert_free(prev);
    char detail[256];
    snprintf(detail, sizeof(detail), "{\"ca\":\"%s\",\"key_id\":%lld}", r->domain->ca,
             (long long)r->order->key_id);
    struct store_event_in ev = {.type = "order.created", .domain = r->domain->name,
                                .actor = r->env->actor, .detail_json = detail};
    rc = store_order_create(r->env->store, r->order, &ev, &r->order->id);
    if (rc < 0) {
        fail(r, "cannot record the order");
        return rc;
    }
    testhook_crash_point("after_order_row");
    return new_order(r);
}

/* Gives up on the order in the store (it stays in history with its error). */
static void finish_failed(struct run *r)
{
    if (!r->order || r->order->id == 0)
        return;
    r->order->finished = true;
    if (strcmp(r->order->status, "valid") != 0) {
        free(r->order->status);
        r->order->status = strdup("invalid");
    }
    save(r, NULL);
}

static int resume_order(struct run *r, int64_t order_id)
{
    if (store_order_get(r->env->store, order_id, &r->order) < 0) {
        fail(r, "cannot read order %lld", (long long)order_id);
        return -EIO;
    }
    r->names = json_loads(r->order->names_json, 0, NULL);
    if (!json_is_array(r->names))
        return -EINVAL;
    if (!r->order->url)
        return new_order(r);
    if (refresh_order(r) == 0 && strcmp(ca_status(r->ca_order), "invalid") != 0)
        return 0;
    /* The CA forgot the order or gave up on it while we were down: keep its reason in the
     * order's history, and start afresh. */
    log_notice("%s: order %s is gone or invalid at the CA; starting a new one", r->domain->name,
               r->order->url);
    const json_t *why = r->err.problem ? r->err.problem
                                       : json_object_get(r->ca_order, "error");
    if (json_is_object(why)) {
        free(r->order->error_json);
        r->order->error_json = json_dumps(why, JSON_COMPACT);
    }
    acme_error_clear(&r->err);
    finish_failed(r);
    return start_order(r);
}

void acme_order_run(const struct acme_order_env *env, int64_t domain_id, int64_t order_id,
                    struct acme_order_result *res)
{
    struct run r = {.env = env, .res = res};
    memset(res, 0, sizeof(*res));
    res->outcome = ORDER_FAILED;
    res->retry_after = -1;
    r.err.retry_after = -1;

    if (store_domain_get_by_id(env->store, domain_id, &r.domain) < 0) {
        fail(&r, "domain %lld not found", (long long)domain_id);
        res->outcome = ORDER_CANCELLED;
        goto out;
    }
    if (strcmp(r.domain->status, DOMAIN_STATUS_REMOVED) == 0) {
        /* Removed while queued or while the daemon was down: let its order go. */
        if (order_id && store_order_get(env->store, order_id, &r.order) == 0)
            finish_failed(&r);
        res->outcome = ORDER_CANCELLED;
        goto out;
    }
    if (acme_client_ensure_account(env->client, &r.err) < 0) {
        fail_acme(&r, "no ACME account");
        goto out;
    }
    int rc;
    if (order_id) {
        rc = resume_order(&r, order_id);
    } else {
        rc = start_order(&r);
    }
    /* Bounded: each pass moves the order at least one state forward or ends the run. */
    bool withdrawn = false;
    for (int pass = 0; rc == 0 && pass < 8; pass++) {
        const char *st = ca_status(r.ca_order);
        /* RFC 8555 §7.1.6: once the order left "pending" every authorization is final, so the
         * responses can go (before the certificate is announced, and also for an order resumed
         * past "pending" after a restart). */
        if (strcmp(st, "pending") != 0 && !withdrawn) {
            acme_order_cleanup_challenges(env, r.order->id);
            withdrawn = true;
        }
        if (strcmp(st, "pending") == 0) {
            rc = satisfy_authorizations(&r);
            if (rc == 0)
                rc = poll_order(&r, "pending");
        } else if (strcmp(st, "ready") == 0) {
            rc = finalize(&r);
        } else if (strcmp(st, "processing") == 0) {
            rc = poll_order(&r, "processing");
        } else if (strcmp(st, "valid") == 0) {
            rc = download_and_store(&r);
            break;
        } else if (strcmp(st, "invalid") == 0) {
            const json_t *e = json_object_get(r.ca_order, "error");
            if (json_is_object(e)) {
                free(r.order->error_json);
                r.order->error_json = json_dumps(e, JSON_COMPACT);
                fail(&r, "order invalid: %s", json_string_value(json_object_get(e, "detail")));
            } else {
                /* The reason lives in the failed authorization. */
                size_t i;
                json_t *url;
                fail(&r, "order invalid");
                json_array_foreach(json_object_get(r.ca_order, "authorizations"), i, url)
                {
                    json_t *authz = NULL;
                    if (fetch_json(&r, json_string_value(url), &authz) == 0 &&
                        strcmp(ca_status(authz), "invalid") == 0) {
                        fail_authz(&r, authz);
                        json_decref(authz);
                        break;
                    }
                    json_decref(authz);
                }
            }
            rc = -EPROTO;
        } else {
            fail(&r, "the order is in an unknown state '%s'", st);
            rc = -EPROTO;
        }
    }
out:
    if (res->outcome == ORDER_CANCELLED && r.order)
        acme_order_cleanup_challenges(env, r.order->id);
    if (res->outcome == ORDER_FAILED) {
        if (r.order)
            acme_order_cleanup_challenges(env, r.order->id);
        finish_failed(&r);
        log_warning("%s: %s", r.domain ? r.domain->name : "?", res->error);
    }
    acme_error_clear(&r.err);
    json_decref(r.ca_order);
    json_decref(r.names);
    store_order_free(r.order);
    store_domain_free(r.domain);
}

void acme_order_cleanup_challenges(const struct acme_order_env *env, int64_t order_id)
{
    struct store_challenge **list = NULL;
    size_t n = 0;
    if (store_challenge_list(env->store, order_id, &list, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct store_challenge *c = list[i];
        enum challenge_type t;
        if (!challenge_type_parse(c->type, &t))
            t = CHALLENGE_TYPE_COUNT;
        if (t == CHALLENGE_HTTP_01) {
            responders_http01_remove(env->responders, c->token);
        } else if (t == CHALLENGE_TLS_ALPN_01) {
            responders_tlsalpn01_remove(env->responders, c->identifier);
        } else if (t == CHALLENGE_DNS_01 && env->config->challenge.dns01_hook) {
            /* Several authorizations of one order (a wildcard and its apex) can share a record
             * name, and some back ends delete every value at once: one del per name. */
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(list[j]->type, c->type) == 0 &&
                       strcmp(list[j]->identifier, c->identifier) == 0;
            char err[512];
            if (!seen && responders_dns01_run(env->config->challenge.dns01_hook,
                                              env->config->challenge.dns01_timeout, "del",
                                              c->identifier, c->key_authorization, err,
                                              sizeof(err)) < 0) {
                log_warning("cannot remove %s: %s; will retry", c->identifier, err);
                continue;
            }
        }
        store_challenge_delete(env->store, c->id);
    }
    store_challenge_list_free(list, n);
}
