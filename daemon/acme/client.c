#include "acme/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/types.h"
#include "core/log.h"
#include "crypto/b64url.h"
#include "crypto/keys.h"
#include "crypto/signer.h"
#include "store/store.h"

/* badNonce answers come in runs under Pebble's 5% rejection; eight in a row is 4e-11. */
#define MAX_NONCE_RETRIES 8
#define NONCE_POOL 16

struct acme_client {
    pthread_mutex_t lock;
    /* Held while the account is being loaded or registered, so two workers starting at once
     * make one account, not two. */
    pthread_mutex_t account_lock;
    char *name, *directory_url, *ca_bundle, *eab_kid, *eab_hmac_key, *account_key_type;
    char **contact;
    size_t contact_count;
    bool terms_agreed;

    struct store *store;
    struct acme_http *http;
    json_t *dir;

    char *nonces[NONCE_POOL];
    size_t nonce_count;

    /* The account: its URL is the "kid" of every request (RFC 8555 §6.2). */
    char *kid;
    struct signer *signer;

    uint64_t requests, bad_nonces;
};

void acme_error_clear(struct acme_error *e)
{
    if (!e)
        return;
    json_decref(e->problem);
    e->problem = NULL;
    e->message[0] = '\0';
    e->retry_after = -1;
}

bool acme_error_is(const struct acme_error *e, const char *type)
{
    const char *t = e && e->problem ? json_string_value(json_object_get(e->problem, "type")) : NULL;
    size_t plen = strlen(ACME_ERR_PREFIX);
    return t && strncmp(t, ACME_ERR_PREFIX, plen) == 0 && strcmp(t + plen, type) == 0;
}

static void set_err(struct acme_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct acme_error *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int acme_client_new(const struct acme_client_opts *o, struct store *store,
                    struct acme_client **out)
{
    struct acme_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->account_lock, NULL);
    c->store = store;
    c->name = strdup(o->name);
    c->directory_url = strdup(o->directory_url);
    c->ca_bundle = dup_or_null(o->ca_bundle);
    c->eab_kid = dup_or_null(o->eab_kid);
    c->eab_hmac_key = dup_or_null(o->eab_hmac_key);
    c->account_key_type = strdup(o->account_key_type ? o->account_key_type : "ec-p256");
    c->terms_agreed = o->terms_agreed;
    if (o->contact_count) {
        c->contact = calloc(o->contact_count, sizeof(*c->contact));
        for (size_t i = 0; c->contact && i < o->contact_count; i++)
            c->contact[i] = strdup(o->contact[i]);
        c->contact_count = c->contact ? o->contact_count : 0;
    }
    if (!c->name || !c->directory_url || !c->account_key_type ||
        acme_http_new(c->ca_bundle, &c->http) < 0) {
        acme_client_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void acme_client_free(struct acme_client *c)
{
    if (!c)
        return;
    acme_http_free(c->http);
    json_decref(c->dir);
    for (size_t i = 0; i < c->nonce_count; i++)
        free(c->nonces[i]);
    for (size_t i = 0; i < c->contact_count; i++)
        free(c->contact[i]);
    free(c->contact);
    if (c->eab_hmac_key)
        explicit_bzero(c->eab_hmac_key, strlen(c->eab_hmac_key));
    free(c->eab_hmac_key);
    free(c->eab_kid);
    free(c->name);
    free(c->directory_url);
    free(c->ca_bundle);
    free(c->account_key_type);
    free(c->kid);
    signer_free(c->signer);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->account_lock);
    free(c);
}

const char *acme_client_name(const struct acme_client *c)
{
    return c->name;
}

const char *acme_client_directory_url(const struct acme_client *c)
{
    return c->directory_url;
}

void acme_client_stats(struct acme_client *c, uint64_t *requests, uint64_t *bad_nonces)
{
    pthread_mutex_lock(&c->lock);
    *requests = c->requests;
    *bad_nonces = c->bad_nonces;
    pthread_mutex_unlock(&c->lock);
}

/* Sends one unsigned or signed request and counts it. */
static int http_do(struct acme_client *c, const char *method, const char *url, const char *body,
                   const char *accept, struct acme_http_response *resp, struct acme_error *err)
{
    char msg[512];
    pthread_mutex_lock(&c->lock);
    c->requests++;
    pthread_mutex_unlock(&c->lock);
    int rc = acme_http_request(c->http, method, url, "application/jose+json", body,
                               body ? strlen(body) : 0, accept, resp, msg, sizeof(msg));
    if (rc < 0)
        set_err(err, "CA %s unreachable: %s", c->name, msg);
    return rc;
}

static void nonce_keep(struct acme_client *c, struct acme_http_response *resp)
{
    if (!resp->replay_nonce)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->nonce_count < NONCE_POOL) {
        c->nonces[c->nonce_count++] = resp->replay_nonce;
        resp->replay_nonce = NULL;
    }
    pthread_mutex_unlock(&c->lock);
}

int acme_client_directory(struct acme_client *c, bool refresh, const json_t **dir,
                          struct acme_error *err)
{
    pthread_mutex_lock(&c->lock);
    bool have = c->dir && !refresh;
    pthread_mutex_unlock(&c->lock);
    if (!have) {
        struct acme_http_response resp;
        if (http_do(c, "GET", c->directory_url, NULL, "application/json", &resp, err) < 0)
            return -EIO;
        json_t *d = resp.status == 200 && resp.body ? json_loads(resp.body, 0, NULL) : NULL;
        long status = resp.status;
        acme_http_response_free(&resp);
        if (!json_is_object(d) || !json_is_string(json_object_get(d, "newNonce")) ||
            !json_is_string(json_object_get(d, "newAccount")) ||
            !json_is_string(json_object_get(d, "newOrder"))) {
            json_decref(d);
            set_err(err, "CA %s: %s did not answer with an ACME directory (HTTP %ld)", c->name,
                    c->directory_url, status);
            return -EIO;
        }
        pthread_mutex_lock(&c->lock);
        json_decref(c->dir);
        c->dir = d;
        pthread_mutex_unlock(&c->lock);
    }
    if (dir)
        *dir = c->dir;
    return 0;
}

const char *acme_client_dir_url(struct acme_client *c, const char *name, struct acme_error *err)
{
    const json_t *dir;
    if (acme_client_directory(c, false, &dir, err) < 0)
        return NULL;
    const char *url = json_string_value(json_object_get(dir, name));
    if (!url)
        set_err(err, "CA %s does not offer %s", c->name, name);
    return url;
}

/* A nonce from the pool, or a fresh one from newNonce (RFC 8555 §7.2). Caller frees. */
static char *nonce_take(struct acme_client *c, struct acme_error *err)
{
    char *n = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->nonce_count)
        n = c->nonces[--c->nonce_count];
    pthread_mutex_unlock(&c->lock);
    if (n)
        return n;
    const char *url = acme_client_dir_url(c, "newNonce", err);
    if (!url)
        return NULL;
    struct acme_http_response resp;
    if (http_do(c, "HEAD", url, NULL, NULL, &resp, err) < 0)
        return NULL;
    n = resp.replay_nonce;
    resp.replay_nonce = NULL;
    if (!n)
        set_err(err, "CA %s: newNonce answered HTTP %ld without a Replay-Nonce", c->name,
                resp.status);
    acme_http_response_free(&resp);
    return n;
}

/* base64url of a JSON value's compact text. */
static char *b64_json(const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return NULL;
    char *b = b64url_encode(text, strlen(text));
    free(text);
    return b;
}

/*
 * The flattened JWS JSON serialisation (RFC 7515 §7.2.2) of PAYLOAD (NULL: empty payload for
 * POST-as-GET) signed by SIGNER, with "kid" KID or, when KID is NULL, the public "jwk". NONCE
 * and URL as RFC 8555 §6.4 requires.
 */
static char *jws_build(const struct signer *signer, const char *kid, const char *nonce,
                       const char *url, const json_t *payload)
{
    char *prot64 = NULL, *pay64 = NULL, *sig64 = NULL, *input = NULL, *out = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    json_t *prot = json_pack("{s:s, s:s}", "alg", signer_alg(signer), "url", url);
    if (!prot)
        return NULL;
    if (nonce)
        json_object_set_new(prot, "nonce", json_string(nonce));
    if (kid)
        json_object_set_new(prot, "kid", json_string(kid));
    else
        json_object_set_new(prot, "jwk", signer_jwk(signer));
    prot64 = b64_json(prot);
    pay64 = payload ? b64_json(payload) : strdup("");
    if (!prot64 || !pay64)
        goto out;
    size_t ilen = strlen(prot64) + 1 + strlen(pay64) + 1;
    if (!(input = malloc(ilen)))
        goto out;
    snprintf(input, ilen, "%s.%s", prot64, pay64);
    if (signer_sign(signer, input, strlen(input), &sig, &sig_len) < 0)
        goto out;
    if (!(sig64 = b64url_encode(sig, sig_len)))
        goto out;
    json_t *jws = json_pack("{s:s, s:s, s:s}", "protected", prot64, "payload", pay64, "signature",
                            sig64);
    if (jws) {
        out = json_dumps(jws, JSON_COMPACT);
        json_decref(jws);
    }
out:
    json_decref(prot);
    free(prot64);
    free(pay64);
    free(sig64);
    free(input);
    free(sig);
    return out;
}

void acme_error_from_response(const char *ca, const char *url,
                              const struct acme_http_response *resp, struct acme_error *err)
{
    if (!err)
        return;
    acme_error_clear(err);
    err->retry_after = resp->retry_after;
    json_t *p = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    if (json_is_object(p)) {
        err->problem = p;
        const char *type = json_string_value(json_object_get(p, "type"));
        const char *detail = json_string_value(json_object_get(p, "detail"));
        set_err(err, "CA %s: %s%s%s", ca, detail ? detail : "error", type ? " (" : "",
                type ? type : "");
        if (type) {
            size_t len = strlen(err->message);
            snprintf(err->message + len, sizeof(err->message) - len, ")");
        }
        /* RFC 8555 §6.7.1: which identifiers failed, and why. */
        size_t i;
        json_t *sub;
        json_array_foreach(json_object_get(p, "subproblems"), i, sub)
        {
            size_t len = strlen(err->message);
            const char *value =
                json_string_value(json_object_get(json_object_get(sub, "identifier"), "value"));
            const char *sdetail = json_string_value(json_object_get(sub, "detail"));
            if (len + 4 >= sizeof(err->message))
                break;
            snprintf(err->message + len, sizeof(err->message) - len, "; %s: %s",
                     value ? value : "?", sdetail ? sdetail : "error");
        }
        return;
    }
    json_decref(p);
    set_err(err, "CA %s answered HTTP %ld to %s", ca, resp->status, url);
}

/*
 * One signed exchange with nonce retries. SIGNER NULL means the account key with its kid, both
 * read under the lock at each attempt: a key rollover may replace them at any time.
 */
static int signed_post(struct acme_client *c, const struct signer *signer, const char *url,
                       const json_t *payload, const char *accept,
                       struct acme_http_response *resp, struct acme_error *err)
{
    for (int attempt = 0;; attempt++) {
        char *nonce = nonce_take(c, err);
        if (!nonce)
            return -EIO;
        char *body = NULL;
        pthread_mutex_lock(&c->lock); /* also: GnuTLS keys are not documented as thread-safe */
        if (signer)
            body = jws_build(signer, NULL, nonce, url, payload);
        else if (c->signer && c->kid)
            body = jws_build(c->signer, c->kid, nonce, url, payload);
        pthread_mutex_unlock(&c->lock);
        free(nonce);
        if (!body) {
            set_err(err, "cannot sign a request to CA %s", c->name);
            return -ENOMEM;
        }
        int rc = http_do(c, "POST", url, body, accept, resp, err);
        free(body);
        if (rc < 0)
            return -EIO;
        nonce_keep(c, resp);
        if (resp->status < 400)
            return 0;
        acme_error_from_response(c->name, url, resp, err);
        /* RFC 8555 §6.5: a badNonce answer carries a fresh nonce; try again with it. */
        if (acme_error_is(err, "badNonce") && attempt < MAX_NONCE_RETRIES) {
            pthread_mutex_lock(&c->lock);
            c->bad_nonces++;
            pthread_mutex_unlock(&c->lock);
            log_debug("CA %s: badNonce on %s, retrying (%d)", c->name, url, attempt + 1);
            acme_http_response_free(resp);
            acme_error_clear(err);
            continue;
        }
        /* ERR holds what the answer said (problem, Retry-After): the response is ours to drop,
         * as callers only take it on success. */
        acme_http_response_free(resp);
        return -EPROTO;
    }
}

/* ---- accounts ---- */

/* RFC 8555 §7.3.4: a JWS over the account's JWK, MACed with the CA-issued key. */
static json_t *eab_build(struct acme_client *c, const char *new_account_url,
                         struct acme_error *err)
{
    uint8_t *hmac_key = NULL, mac[32];
    size_t hmac_key_len = 0;
    json_t *out = NULL;
    char *prot64 = NULL, *pay64 = NULL, *input = NULL, *sig64 = NULL;
    if (b64url_decode(c->eab_hmac_key, &hmac_key, &hmac_key_len) < 0) {
        set_err(err, "[ca.%s] eab_hmac_key is not base64url", c->name);
        return NULL;
    }
    json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", c->eab_kid, "url",
                             new_account_url);
    json_t *jwk = signer_jwk(c->signer);
    prot64 = prot ? b64_json(prot) : NULL;
    pay64 = jwk ? b64_json(jwk) : NULL;
    if (!prot64 || !pay64)
        goto out;
    size_t ilen = strlen(prot64) + strlen(pay64) + 2;
    if (!(input = malloc(ilen)))
        goto out;
    snprintf(input, ilen, "%s.%s", prot64, pay64);
    if (crypto_hmac_sha256(hmac_key, hmac_key_len, input, strlen(input), mac) < 0 ||
        !(sig64 = b64url_encode(mac, sizeof(mac))))
        goto out;
    out = json_pack("{s:s, s:s, s:s}", "protected", prot64, "payload", pay64, "signature", sig64);
out:
    if (hmac_key) {
        explicit_bzero(hmac_key, hmac_key_len);
        free(hmac_key);
    }
    explicit_bzero(mac, sizeof(mac));
    json_decref(prot);
    json_decref(jwk);
    free(prot64);
    free(pay64);
    free(input);
    free(sig64);
    if (!out)
        set_err(err, "cannot build the external account binding for CA %s", c->name);
    return out;
}

static char *contact_json_text(struct acme_client *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->contact_count; i++)
        json_array_append_new(a, json_string(c->contact[i]));
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return t;
}

/* newAccount (RFC 8555 §7.3) with the key in c->signer; stores the account URL. Caller holds
 * no lock. */
static int register_account(struct acme_client *c, struct acme_error *err)
{
    const json_t *dir;
    if (acme_client_directory(c, false, &dir, err) < 0)
        return -EIO;
    const char *url = json_string_value(json_object_get(dir, "newAccount"));
    const json_t *meta = json_object_get(dir, "meta");
    const char *tos = json_string_value(json_object_get(meta, "termsOfService"));
    if (tos && !c->terms_agreed) {
        set_err(err, "CA %s requires agreeing to its terms of service (%s): set terms_agreed = yes "
                     "in [ca.%s]", c->name, tos, c->name);
        return -EPERM;
    }
    if (json_is_true(json_object_get(meta, "externalAccountRequired")) && !c->eab_kid) {
        set_err(err, "CA %s requires external account binding: set eab_kid and eab_hmac_key in "
                     "[ca.%s]", c->name, c->name);
        return -EPERM;
    }

    json_t *payload = json_object();
    if (!payload)
        return -ENOMEM;
    if (tos || c->terms_agreed)
        json_object_set_new(payload, "termsOfServiceAgreed", json_boolean(c->terms_agreed));
    if (c->contact_count) {
        json_t *contact = json_array();
        for (size_t i = 0; i < c->contact_count; i++)
            json_array_append_new(contact, json_string(c->contact[i]));
        json_object_set_new(payload, "contact", contact);
    }
    if (c->eab_kid) {
        json_t *eab = eab_build(c, url, err);
        if (!eab) {
            json_decref(payload);
            return -EINVAL;
        }
        json_object_set_new(payload, "externalAccountBinding", eab);
    }

    struct acme_http_response resp;
    /* Callers hold account_lock, so c->signer stays put; newAccount names the key by its jwk. */
    int rc = signed_post(c, c->signer, url, payload, NULL, &resp, err);
    json_decref(payload);
    if (rc < 0)
        return rc;
    if (!resp.location) {
        set_err(err, "CA %s: newAccount answered without the account URL", c->name);
        acme_http_response_free(&resp);
        return -EPROTO;
    }
    char *contact = contact_json_text(c);
    char detail[512];
    snprintf(detail, sizeof(detail), "{\"ca\":\"%s\"}", c->name);
    struct store_event_in ev = {.type = "account.registered", .actor = "certd",
                                .detail_json = detail};
    rc = store_account_update(c->store, c->name, resp.location, "valid", contact, NULL, NULL,
                              &ev);
    free(contact);
    if (rc == 0) {
        pthread_mutex_lock(&c->lock);
        free(c->kid);
        c->kid = resp.location;
        resp.location = NULL;
        pthread_mutex_unlock(&c->lock);
        log_notice("CA %s: account registered: %s", c->name, c->kid);
    } else {
        set_err(err, "cannot store the account for CA %s", c->name);
    }
    acme_http_response_free(&resp);
    return rc;
}

static int load_or_create_account(struct acme_client *c, struct acme_error *err);

int acme_client_ensure_account(struct acme_client *c, struct acme_error *err)
{
    pthread_mutex_lock(&c->lock);
    bool ready = c->kid && c->signer;
    pthread_mutex_unlock(&c->lock);
    if (ready)
        return 0;
    pthread_mutex_lock(&c->account_lock);
    pthread_mutex_lock(&c->lock);
    ready = c->kid && c->signer;
    pthread_mutex_unlock(&c->lock);
    int rc = ready ? 0 : load_or_create_account(c, err);
    pthread_mutex_unlock(&c->account_lock);
    return rc;
}

/* A new account key for this CA, written to the store (replacing any account) before use. */
static int create_account_key(struct acme_client *c, struct acme_error *err)
{
    enum key_type kt;
    char *pem = NULL, sha[KEY_FINGERPRINT_SIZE];
    if (!key_type_parse(c->account_key_type, &kt))
        kt = KEY_EC_P256;
    if (keys_generate(kt, &pem, sha) < 0) {
        set_err(err, "cannot generate an account key for CA %s", c->name);
        return -EIO;
    }
    struct store_account na = {.ca = c->name, .directory_url = c->directory_url,
                               .key_type = (char *)key_type_name(kt), .key_pem = pem,
                               .status = "pending"};
    char detail[256];
    snprintf(detail, sizeof(detail), "{\"ca\":\"%s\",\"key_type\":\"%s\"}", c->name,
             key_type_name(kt));
    struct store_event_in ev = {.type = "account.key_generated", .actor = "certd",
                                .detail_json = detail};
    int rc = store_account_put(c->store, &na, &ev);
    keys_pem_free(pem);
    if (rc < 0)
        set_err(err, "cannot store the account key for CA %s", c->name);
    return rc;
}

static int load_or_create_account(struct acme_client *c, struct acme_error *err)
{
    struct store_account *a = NULL;
    int rc = store_account_get(c->store, c->name, c->directory_url, &a);
    if (rc == -ENOENT) {
        if ((rc = create_account_key(c, err)) < 0)
            return rc;
        rc = store_account_get(c->store, c->name, c->directory_url, &a);
    }
    if (rc < 0) {
        set_err(err, "cannot read the account for CA %s", c->name);
        return rc;
    }
    if (strcmp(a->status, "valid") != 0 && strcmp(a->status, "pending") != 0) {
        set_err(err, "the account with CA %s is %s; certctl account ... can make a new one",
                c->name, a->status);
        store_account_free(a);
        return -EPERM;
    }
    struct signer *s = NULL;
    rc = signer_load(a->key_pem, &s);
    if (rc < 0) {
        set_err(err, "the stored account key for CA %s is unusable", c->name);
        store_account_free(a);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    signer_free(c->signer);
    c->signer = s;
    free(c->kid);
    c->kid = a->account_url ? strdup(a->account_url) : NULL;
    bool registered = c->kid != NULL;
    pthread_mutex_unlock(&c->lock);
    store_account_free(a);
    return registered ? 0 : register_account(c, err);
}

int acme_client_post(struct acme_client *c, const char *url, const json_t *payload,
                     const char *accept, struct acme_http_response *resp, json_t **json_out,
                     struct acme_error *err)
{
    if (json_out)
        *json_out = NULL;
    for (int attempt = 0;; attempt++) {
        int rc = acme_client_ensure_account(c, err);
        if (rc < 0)
            return rc;
        rc = signed_post(c, NULL, url, payload, accept, resp, err);
        /* A CA that lost its state no longer knows our account (RFC 8555 §7.3.1): register
         * the same key again and repeat the request, once. */
        if (rc == -EPROTO && attempt == 0 && acme_error_is(err, "accountDoesNotExist")) {
            log_warning("CA %s no longer knows our account; registering again", c->name);
            acme_http_response_free(resp);
            acme_error_clear(err);
            pthread_mutex_lock(&c->account_lock);
            rc = register_account(c, err);
            pthread_mutex_unlock(&c->account_lock);
            if (rc < 0)
                return rc;
            continue;
        }
        if (rc == 0 && json_out && resp->body && resp->content_type &&
            (strcmp(resp->content_type, "application/json") == 0 ||
             strcmp(resp->content_type, "application/problem+json") == 0))
            *json_out = json_loads(resp->body, 0, NULL);
        return rc;
    }
}

int acme_client_thumbprint(struct acme_client *c, char out[44], struct acme_error *err)
{
    int rc = acme_client_ensure_account(c, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->lock);
    rc = signer_thumbprint(c->signer, out);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int acme_client_post_with_key(struct acme_client *c, const char *key_pem, const char *url,
                              const json_t *payload, struct acme_http_response *resp,
                              struct acme_error *err)
{
    struct signer *s = NULL;
    if (signer_load(key_pem, &s) < 0) {
        set_err(err, "the certificate's key is unusable");
        return -EINVAL;
    }
    int rc = signed_post(c, s, url, payload, NULL, resp, err);
    signer_free(s);
    return rc;
}

static int key_rollover_locked(struct acme_client *c, struct acme_error *err);

int acme_client_key_rollover(struct acme_client *c, struct acme_error *err)
{
    int rc = acme_client_ensure_account(c, err);
    if (rc < 0)
        return rc;
    /* One account change at a time (rollover, deactivation, a new registration). */
    pthread_mutex_lock(&c->account_lock);
    rc = key_rollover_locked(c, err);
    pthread_mutex_unlock(&c->account_lock);
    return rc;
}

static int key_rollover_locked(struct acme_client *c, struct acme_error *err)
{
    int rc;
    const char *url = acme_client_dir_url(c, "keyChange", err);
    if (!url)
        return -ENOTSUP;

    enum key_type kt;
    char *pem = NULL, sha[KEY_FINGERPRINT_SIZE];
    struct signer *new_signer = NULL;
    json_t *inner_payload = NULL, *inner = NULL;
    char *inner_text = NULL;
    if (!key_type_parse(c->account_key_type, &kt))
        kt = KEY_EC_P256;
    if (keys_generate(kt, &pem, sha) < 0 || signer_load(pem, &new_signer) < 0) {
        set_err(err, "cannot generate a new account key");
        rc = -EIO;
        goto out;
    }
    /* RFC 8555 §7.3.5: the inner JWS, signed by the new key, names the account and old key. */
    pthread_mutex_lock(&c->lock);
    inner_payload = json_pack("{s:s, s:o}", "account", c->kid, "oldKey", signer_jwk(c->signer));
    pthread_mutex_unlock(&c->lock);
    inner_text = inner_payload ? jws_build(new_signer, NULL, NULL, url, inner_payload) : NULL;
    inner = inner_text ? json_loads(inner_text, 0, NULL) : NULL;
    if (!inner) {
        set_err(err, "cannot build the key change request");
        rc = -ENOMEM;
        goto out;
    }
    struct acme_http_response resp;
    rc = acme_client_post(c, url, inner, NULL, &resp, NULL, err);
    if (rc < 0)
        goto out;
    acme_http_response_free(&resp);
    char detail[256];
    snprintf(detail, sizeof(detail), "{\"ca\":\"%s\",\"key_type\":\"%s\"}", c->name,
             key_type_name(kt));
    struct store_event_in ev = {.type = "account.key_rolled", .actor = "certd",
                                .detail_json = detail};
    rc = store_account_update(c->store, c->name, c->kid, "valid", NULL, key_type_name(kt), pem,
                              &ev);
    if (rc < 0) {
        /* The CA has the new key now; without it stored we would lose the account. */
        log_error("CA %s accepted the new account key but it could not be stored", c->name);
        set_err(err, "the new account key could not be stored");
        goto out;
    }
    pthread_mutex_lock(&c->lock);
    signer_free(c->signer);
    c->signer = new_signer;
    new_signer = NULL;
    pthread_mutex_unlock(&c->lock);
    log_notice("CA %s: account key rolled over", c->name);
out:
    keys_pem_free(pem);
    signer_free(new_signer);
    json_decref(inner_payload);
    json_decref(inner);
    free(inner_text);
    return rc;
}

int acme_client_deactivate(struct acme_client *c, struct acme_error *err)
{
    int rc = acme_client_ensure_account(c, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->account_lock);
    json_t *payload = json_pack("{s:s}", "status", "deactivated");
    pthread_mutex_lock(&c->lock);
    char *kid = c->kid ? strdup(c->kid) : NULL;
    pthread_mutex_unlock(&c->lock);
    struct acme_http_response resp;
    rc = kid ? acme_client_post(c, kid, payload, NULL, &resp, NULL, err) : -ENOENT;
    json_decref(payload);
    if (rc < 0)
        goto out;
    acme_http_response_free(&resp);
    char detail[256];
    snprintf(detail, sizeof(detail), "{\"ca\":\"%s\"}", c->name);
    struct store_event_in ev = {.type = "account.deactivated", .actor = "certd",
                                .detail_json = detail};
    rc = store_account_update(c->store, c->name, kid, "deactivated", NULL, NULL, NULL, &ev);
    pthread_mutex_lock(&c->lock);
    free(c->kid);
    c->kid = NULL; /* the next use fails with the stored status */
    pthread_mutex_unlock(&c->lock);
out:
    free(kid);
    pthread_mutex_unlock(&c->account_lock);
    return rc;
}

int acme_client_register_new(struct acme_client *c, struct acme_error *err)
{
    pthread_mutex_lock(&c->account_lock);
    pthread_mutex_lock(&c->lock);
    free(c->kid);
    c->kid = NULL;
    signer_free(c->signer);
    c->signer = NULL;
    pthread_mutex_unlock(&c->lock);
    int rc = create_account_key(c, err);
    if (rc == 0)
        rc = load_or_create_account(c, err);
    pthread_mutex_unlock(&c->account_lock);
    return rc;
}

bool acme_client_has_ari(struct acme_client *c)
{
    const json_t *dir;
    struct acme_error err = {.retry_after = -1};
    bool has = acme_client_directory(c, false, &dir, &err) == 0 &&
               json_is_string(json_object_get(dir, "renewalInfo"));
    acme_error_clear(&err);
    return has;
}

int acme_client_has_profile(struct acme_client *c, const char *name, struct acme_error *err)
{
    const json_t *dir;
    if (acme_client_directory(c, false, &dir, err) < 0)
        return -EIO;
    const json_t *profiles = json_object_get(json_object_get(dir, "meta"), "profiles");
    return json_is_object(profiles) && json_object_get(profiles, name) ? 1 : 0;
}

int acme_client_renewal_info(struct acme_client *c, const char *ari_id, int64_t *start,
                             int64_t *end, int64_t *retry_after, struct acme_error *err)
{
    const json_t *dir;
    if (acme_client_directory(c, false, &dir, err) < 0)
        return -EIO;
    const char *base = json_string_value(json_object_get(dir, "renewalInfo"));
    if (!base)
        return -ENOTSUP;
    size_t len = strlen(base) + 1 + strlen(ari_id) + 1;
    char *url = malloc(len);
    if (!url)
        return -ENOMEM;
    /* RFC 9773 §4.1: the CertID is appended as a path segment. */
    snprintf(url, len, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", ari_id);
    struct acme_http_response resp;
    int rc = http_do(c, "GET", url, NULL, "application/json", &resp, err);
    if (rc < 0) {
        free(url);
        return -EIO;
    }
    nonce_keep(c, &resp);
    *retry_after = resp.retry_after;
    if (resp.status != 200) {
        acme_error_from_response(c->name, url, &resp, err);
        acme_http_response_free(&resp);
        free(url);
        return -EPROTO;
    }
    json_t *o = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    const json_t *w = json_object_get(o, "suggestedWindow");
    rc = json_time_parse(json_string_value(json_object_get(w, "start")), start) == 0 &&
                 json_time_parse(json_string_value(json_object_get(w, "end")), end) == 0 &&
                 *end >= *start
             ? 0
             : -EPROTO;
    if (rc < 0)
        set_err(err, "CA %s sent renewal information without a usable suggestedWindow", c->name);
    json_decref(o);
    acme_http_response_free(&resp);
    free(url);
    return rc;
}
