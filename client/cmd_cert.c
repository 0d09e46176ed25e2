/* certctl cert get|revoke: delivering a domain's certificate and key to files, and revoking. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "certctl.h"
#include "common/atomicfile.h"
#include "http.h"
#include "output.h"

/* Certificates are public; the key file is created 0600 and never has a wider mode. */
#define CERT_FILE_MODE 0644
#define KEY_FILE_MODE 0600
/* cert get reads certificate, key, certificate; a renewal in between makes it start over, at
 * most this many times (renewals are minutes apart, so a second attempt practically always
 * succeeds). */
#define CERT_GET_ATTEMPTS 3
/* RFC 5280 §4.1.2.2: at most 20 octets; leave room for a CA that ignores that. */
#define SERIAL_HEX_MAX 128

/* ---- get --------------------------------------------------------------------------------- */

enum { GOPT_OUT, GOPT_CERT_OUT, GOPT_CHAIN_OUT, GOPT_KEY_OUT, GOPT_COUNT };
static const struct opt_spec get_opts[] = {
    [GOPT_OUT] = {"--out", true},
    [GOPT_CERT_OUT] = {"--cert-out", true},
    [GOPT_CHAIN_OUT] = {"--chain-out", true},
    [GOPT_KEY_OUT] = {"--key-out", true},
    {NULL, false},
};

/* The certificate document's member each --*-out option writes (the key comes separately). */
static const char *const get_members[GOPT_COUNT] = {
    [GOPT_OUT] = "fullchain",
    [GOPT_CERT_OUT] = "certificate",
    [GOPT_CHAIN_OUT] = "chain",
    [GOPT_KEY_OUT] = NULL,
};

static int write_out(const char *path, const void *data, size_t len, mode_t mode)
{
    int rc = atomic_write_file(path, data, len, mode);
    if (rc < 0) {
        errmsg("cannot write %s: %s", strcmp(path, "-") == 0 ? "standard output" : path,
               strerror(-rc));
        return CERTCTL_EXIT_FAILED;
    }
    return CERTCTL_EXIT_OK;
}

/*
 * Fetches NAME's certificate document into *CERT and, when KEY is not NULL, its private key into
 * *KEY, making sure the two belong together: the key endpoint serves the key of whatever
 * certificate is current, so the certificate is read again after the key and must still be the
 * same one (ids only grow, so an equal id is the same certificate).
 */
static int fetch_cert_and_key(struct certctl *ctx, const char *name, json_t **cert,
                              struct http_response *key)
{
    char *cert_path = api_domain_path(ctx, name, "/certificate");
    char *key_path = key ? api_domain_path(ctx, name, "/key") : NULL;
    json_t *again = NULL;
    int ret = CERTCTL_EXIT_FAILED;

    *cert = NULL;
    if (!cert_path || (key && !key_path))
        goto out;
    for (int attempt = 0; attempt < CERT_GET_ATTEMPTS; attempt++) {
        ret = api_call_object(ctx, "GET", cert_path, NULL, cert);
        if (ret != CERTCTL_EXIT_OK || !key)
            goto out;
        ret = api_call_raw(ctx, "GET", key_path, key);
        if (ret != CERTCTL_EXIT_OK)
            goto out;
        ret = api_call_object(ctx, "GET", cert_path, NULL, &again);
        if (ret != CERTCTL_EXIT_OK)
            goto out;
        const json_t *id1 = json_object_get(*cert, "id"), *id2 = json_object_get(again, "id");
        bool same = json_is_integer(id1) && json_equal(id1, id2);
        json_decref(again);
        again = NULL;
        if (same)
            goto out;
        /* Renewed in between: the key may be the new certificate's. Start over. */
        json_decref(*cert);
        *cert = NULL;
        http_response_clear(key);
    }
    errmsg("the certificate of %s kept changing while it was read; try again", name);
    ret = CERTCTL_EXIT_FAILED;
out:
    if (ret != CERTCTL_EXIT_OK) {
        json_decref(*cert);
        *cert = NULL;
        if (key)
            http_response_clear(key);
    }
    free(cert_path);
    free(key_path);
    return ret;
}

/* A PKCS#8 PEM private key, as the key endpoint sends (RFC 7468 §10 and §11). Anything else
 * (an HTML error page from a proxy, say) must not be written as the key. */
static bool looks_like_key_pem(const struct http_response *r)
{
    static const char begin[] = "-----BEGIN ";
    return r->body_len > strlen(begin) && strncmp(r->body, begin, strlen(begin)) == 0 &&
           strstr(r->body, "PRIVATE KEY-----") != NULL;
}

static int run_get(struct certctl *ctx, struct cli_args *args)
{
    const char *out[GOPT_COUNT] = {NULL};
    const char *name = NULL, *val;
    int which;
    enum args_result r;
    bool any_out = false, stdout_used = false;
    json_t *cert = NULL;
    struct http_response key = {0};
    int ret;

    while ((r = args_next(args, ctx, get_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD) {
            if (name)
                return usage_error(ctx, "unexpected argument '%s'", val);
            name = val;
            continue;
        }
        if (val[0] == '\0')
            return usage_error(ctx, "%s needs a file name (or '-' for standard output)",
                               get_opts[which].name);
        if (out[which])
            return usage_error(ctx, "%s given twice", get_opts[which].name);
        out[which] = val;
        any_out = true;
        if (strcmp(val, "-") == 0)
            stdout_used = true;
    }
    if (!name)
        return usage_error(ctx, "missing domain name");
    /* Two outputs into one file would leave only the last; '-' may repeat (they concatenate). */
    for (int i = 0; i < GOPT_COUNT; i++) {
        for (int j = i + 1; j < GOPT_COUNT; j++) {
            if (out[i] && out[j] && strcmp(out[i], "-") != 0 && strcmp(out[i], out[j]) == 0)
                return usage_error(ctx, "%s and %s name the same file '%s'", get_opts[i].name,
                                   get_opts[j].name, out[i]);
        }
    }
    if (ctx->json && stdout_used)
        return usage_error(ctx, "--json and an output to '-' would both write standard output");
    if (!any_out && !ctx->json)
        out[GOPT_OUT] = "-";

    ret = fetch_cert_and_key(ctx, name, &cert, out[GOPT_KEY_OUT] ? &key : NULL);
    if (ret != CERTCTL_EXIT_OK)
        goto done;
    if (out[GOPT_KEY_OUT] && !looks_like_key_pem(&key)) {
        errmsg("certd's answer for the key of %s is not a PEM private key", name);
        ret = CERTCTL_EXIT_FAILED;
        goto done;
    }
    for (int i = 0; i < GOPT_COUNT; i++) {
        if (i != GOPT_KEY_OUT && out[i] && !json_is_string(json_object_get(cert, get_members[i]))) {
            errmsg("certd's certificate document has no \"%s\"", get_members[i]);
            ret = CERTCTL_EXIT_FAILED;
            goto done;
        }
    }

    /* stdio may hold nothing yet, but atomic_write_file writes fd 1 directly: keep the order. */
    fflush(stdout);
    /* The key first: if it cannot be written, the certificate files stay as they were and still
     * match the key that is there. */
    if (out[GOPT_KEY_OUT]) {
        ret = write_out(out[GOPT_KEY_OUT], key.body, key.body_len, KEY_FILE_MODE);
        if (ret != CERTCTL_EXIT_OK)
            goto done;
    }
    for (int i = 0; i < GOPT_COUNT; i++) {
        if (i == GOPT_KEY_OUT || !out[i])
            continue;
        const char *pem = json_string_value(json_object_get(cert, get_members[i]));
        ret = write_out(out[i], pem, strlen(pem), CERT_FILE_MODE);
        if (ret != CERTCTL_EXIT_OK)
            goto done;
    }
    if (ctx->json)
        ret = output_json(cert) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
done:
    /* Wipes the key before freeing it (http_response_clear). */
    http_response_clear(&key);
    json_decref(cert);
    return ret;
}

static const struct command cmd_cert_get = {
    .name = "get",
    .summary = "Write a domain's certificate, chain and key to files",
    .usage =
        "Usage: certctl cert get NAME [--out FILE] [--cert-out FILE] [--chain-out FILE]\n"
        "                             [--key-out FILE]\n"
        "\n"
        "Fetches the current certificate of domain NAME and writes it where told. Without any\n"
        "of the options, prints the full chain (leaf first) to standard output.\n"
        "\n"
        "Options:\n"
        "  --out FILE        The full chain: the certificate followed by its intermediates\n"
        "  --cert-out FILE   The certificate alone\n"
        "  --chain-out FILE  The intermediates alone\n"
        "  --key-out FILE    The private key (PKCS#8 PEM), created with mode 0600\n"
        "\n"
        "FILE '-' is standard output. Each file is replaced atomically: it is written to a new\n"
        "file in the same directory with its final mode (0644, or 0600 for the key) and renamed\n"
        "over FILE, so readers see the old or the new content, never a mix. A symlink at FILE is\n"
        "replaced, not followed. The key is written first and only when asked for; the\n"
        "certificate is read again after the key to make sure both belong together.\n"
        "\n"
        "Calls GET /v1/domains/NAME/certificate (as JSON) and, for --key-out,\n"
        "GET /v1/domains/NAME/key. With --json, prints the certificate document (never the\n"
        "key) after writing the files; it cannot be combined with '-'.\n",
    .run = run_get,
};

/* ---- revoke ------------------------------------------------------------------------------ */

enum { VOPT_REASON };
static const struct opt_spec revoke_opts[] = {
    [VOPT_REASON] = {"--reason", true},
    {NULL, false},
};

/*
 * Whether ARG is a certificate serial rather than a domain name: hex digits, optionally in
 * colon-separated pairs as openssl prints them. Writes the API's spelling (lower-case hex, no
 * colons) to SERIAL. Domain names always have a dot, serials never.
 */
static bool parse_serial(const char *arg, char *serial, size_t size)
{
    size_t n = 0;
    for (const char *p = arg; *p; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || n + 1 >= size)
            return false;
        serial[n++] = (char)tolower((unsigned char)*p);
    }
    serial[n] = '\0';
    return n > 0;
}

static int print_revoked(const json_t *doc)
{
    static const char *const fields[][2] = {
        {"serial", "serial"}, {"domain", "domain"},           {"status", "status"},
        {"reason", "reason"}, {"replacement", "replacement"},
    };
    char buf[1024];
    struct table *t = table_new(2, NULL);
    if (!t)
        goto oom;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (table_kv(t, fields[i][0],
                     output_value(json_object_get(doc, fields[i][1]), buf, sizeof(buf))) < 0)
            goto oom;
    }
    table_print(t, stdout);
    table_free(t);
    return CERTCTL_EXIT_OK;
oom:
    table_free(t);
    errmsg("out of memory");
    return CERTCTL_EXIT_FAILED;
}

static int run_revoke(struct certctl *ctx, struct cli_args *args)
{
    const char *target = NULL, *reason = NULL, *val;
    int which;
    enum args_result r;
    char serial[SERIAL_HEX_MAX + 1];
    json_t *cert = NULL, *body = NULL, *doc = NULL;
    char *path = NULL, *esc = NULL;
    int ret;

    while ((r = args_next(args, ctx, revoke_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_OPTION) {
            if (val[0] == '\0')
                return usage_error(ctx, "--reason needs a reason name or code");
            reason = val;
            continue;
        }
        if (target)
            return usage_error(ctx, "unexpected argument '%s'", val);
        target = val;
    }
    if (!target)
        return usage_error(ctx, "missing certificate serial or domain name");

    if (!parse_serial(target, serial, sizeof(serial))) {
        if (!strchr(target, '.'))
            return usage_error(ctx, "'%s' is neither a serial (hex) nor a domain name", target);
        /* A domain: revoke its current certificate. */
        path = api_domain_path(ctx, target, "/certificate");
        if (!path)
            return CERTCTL_EXIT_FAILED;
        ret = api_call_object(ctx, "GET", path, NULL, &cert);
        if (ret != CERTCTL_EXIT_OK)
            goto out;
        const char *s = json_string_value(json_object_get(cert, "serial"));
        if (!s || !parse_serial(s, serial, sizeof(serial))) {
            errmsg("certd's certificate document for %s has no valid serial", target);
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        free(path);
        path = NULL;
    }

    body = json_object();
    if (!body)
        goto oom;
    if (reason) {
        /* Codes go as integers, names as strings: the daemon knows both (RFC 5280 §5.3.1). */
        long code;
        json_t *v =
            args_parse_long(reason, 0, 10, &code) ? json_integer(code) : json_string(reason);
        if (json_object_set_new(body, "reason", v) < 0)
            goto oom;
    }
    esc = http_escape(ctx->http, serial);
    if (!esc)
        goto oom;
    size_t len = strlen("/v1/certificates//revoke") + strlen(esc) + 1;
    path = malloc(len);
    if (!path)
        goto oom;
    snprintf(path, len, "/v1/certificates/%s/revoke", esc);
    ret = api_call_object(ctx, "POST", path, body, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json)
        ret = output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
    else
        ret = print_revoked(doc);
    goto out;
oom:
    errmsg("out of memory");
    ret = CERTCTL_EXIT_FAILED;
out:
    json_decref(doc);
    json_decref(body);
    json_decref(cert);
    free(path);
    free(esc);
    return ret;
}

static const struct command cmd_cert_revoke = {
    .name = "revoke",
    .summary = "Revoke a certificate by serial, or a domain's current one",
    .usage =
        "Usage: certctl cert revoke SERIAL|NAME [--reason R]\n"
        "\n"
        "Revokes a certificate at its CA. SERIAL is the serial in hex as 'certctl history'\n"
        "shows it (colons as openssl prints them are accepted); a NAME (anything with a dot)\n"
        "means that domain's current certificate. Revoking a domain's current certificate\n"
        "makes certd order a replacement at once, with a new key when the reason is\n"
        "keyCompromise.\n"
        "\n"
        "Options:\n"
        "  --reason R   An RFC 5280 reason code (0-10 but 7) or its name: unspecified,\n"
        "               keyCompromise, cACompromise, affiliationChanged, superseded,\n"
        "               cessationOfOperation, certificateHold, removeFromCRL,\n"
        "               privilegeWithdrawn, aACompromise (default: none given)\n"
        "\n"
        "Calls GET /v1/domains/NAME/certificate for a NAME, then\n"
        "POST /v1/certificates/SERIAL/revoke. Prints the serial, domain, status, reason and\n"
        "whether a replacement is scheduled (with --json, the API's response). A certificate\n"
        "that is already revoked is an error (exit 1), as is a refusal by the CA (its problem\n"
        "is shown).\n",
    .run = run_revoke,
};

/* ---- cert -------------------------------------------------------------------------------- */

static const struct command *const cert_subs[] = {&cmd_cert_get, &cmd_cert_revoke, NULL};

const struct command cmd_cert = {
    .name = "cert",
    .summary = "Get a domain's certificate and key, revoke certificates",
    .usage = "Usage: certctl cert COMMAND [ARGS...]\n"
             "\n"
             "Commands:\n"
             "  get NAME [--out FILE] [--cert-out FILE] [--chain-out FILE] [--key-out FILE]\n"
             "                  Write a domain's certificate, chain and key to files\n"
             "  revoke SERIAL|NAME [--reason R]\n"
             "                  Revoke a certificate by serial, or a domain's current one\n"
             "\n"
             "Run 'certctl cert COMMAND --help' for a command's details.\n",
    .run = NULL,
    .subs = cert_subs,
};
