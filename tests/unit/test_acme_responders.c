/* Challenge responders on loopback: http-01 over raw HTTP/1.1, tls-alpn-01 with a GnuTLS client
 * checking the certificate it is handed, dns-01 with shell-script hooks. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cmocka.h>

#include "acme/responders.h"
#include "core/config.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts responders for the given listen addresses (NULL = off); fails the test on error. */
static struct responders *start(const char *http, const char *tls)
{
    struct config *cfg = NULL;
    struct responders *r = NULL;
    char err[256] = "";

    assert_int_equal(config_defaults(&cfg), 0);
    cfg->challenge.http01_listen = http ? strdup(http) : NULL;
    cfg->challenge.tlsalpn01_listen = tls ? strdup(tls) : NULL;
    int rc = responders_start(cfg, &r, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "responders_start: %d %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    config_free(cfg);
    return r;
}

static int start_err(const char *http, const char *tls, char *err, size_t errsz)
{
    struct config *cfg = NULL;
    struct responders *r = NULL;

    assert_int_equal(config_defaults(&cfg), 0);
    cfg->challenge.http01_listen = http ? strdup(http) : NULL;
    cfg->challenge.tlsalpn01_listen = tls ? strdup(tls) : NULL;
    int rc = responders_start(cfg, &r, err, errsz);
    config_free(cfg);
    if (rc == 0)
        responders_stop(r);
    else
        assert_null(r);
    return rc;
}

static int connect_port(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    assert_int_equal(rc, 0);
    return fd;
}

/* ---- http-01 ---- */

struct http_reply {
    int status;
    char head[2048]; /* status line and headers */
    char body[2048];
    size_t body_len;
};

/* Sends REQUEST verbatim and reads the reply until the server closes. */
static void http_raw(int family, int port, const char *request, struct http_reply *rep)
{
    static char buf[8192];
    size_t len = 0;
    int fd = connect_port(family, port);

    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    for (;;) {
        assert_true(len < sizeof(buf) - 1);
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    memset(rep, 0, sizeof(*rep));
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d ", &rep->status), 1);
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    size_t hlen = (size_t)(sep - buf);
    assert_true(hlen < sizeof(rep->head));
    memcpy(rep->head, buf, hlen);
    rep->body_len = len - hlen - 4;
    assert_true(rep->body_len < sizeof(rep->body));
    memcpy(rep->body, sep + 4, rep->body_len);
}

static void http_req(int port, const char *method, const char *path, struct http_reply *rep)
{
    char req[1024];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
             method, path);
    http_raw(AF_INET, port, req, rep);
}

#define TOKEN "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
#define KEY_AUTH TOKEN ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
#define WK "/.well-known/acme-challenge/"

static void test_http01_serves_token(void **state)
{
    struct responders *r = start("127.0.0.1:0", NULL);
    struct http_reply rep;
    int port = responders_http01_port(r);

    assert_true(responders_have_http01(r));
    assert_false(responders_have_tlsalpn01(r));
    assert_true(port > 0 && port < 65536);
    assert_int_equal(responders_tlsalpn01_port(r), -ENOTCONN);

    /* Not yet published. */
    http_req(port, "GET", WK TOKEN, &rep);
    assert_int_equal(rep.status, 404);

    assert_int_equal(responders_http01_add(r, TOKEN, KEY_AUTH), 0);
    http_req(port, "GET", WK TOKEN, &rep);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.body_len, strlen(KEY_AUTH)); /* exactly, no newline (RFC 8555 §8.3) */
    assert_memory_equal(rep.body, KEY_AUTH, strlen(KEY_AUTH));
    assert_non_null(strstr(rep.head, "Content-Type: text/plain"));

    /* HEAD: same status and length, no body. */
    http_req(port, "HEAD", WK TOKEN, &rep);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.body_len, 0);

    /* The query is not part of the path. */
    http_req(port, "GET", WK TOKEN "?x=1", &rep);
    assert_int_equal(rep.status, 200);
    assert_memory_equal(rep.body, KEY_AUTH, strlen(KEY_AUTH));

    /* Other tokens, paths, traversal, methods. */
    const char *not_found[] = {
        WK "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX1",
        WK "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX",
        WK TOKEN "/",
        WK TOKEN "x",
        WK,
        WK "../acme-challenge/" TOKEN,
        WK "%2e%2e/acme-challenge/" TOKEN,
        WK "x/../" TOKEN,
        "/.well-known/acme-challenge",
        "/.WELL-KNOWN/ACME-CHALLENGE/" TOKEN,
        "/" TOKEN,
        "/",
        "/etc/passwd",
        "//.well-known/acme-challenge/" TOKEN,
    };
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        http_req(port, "GET", not_found[i], &rep);
        if (rep.status != 404)
            fprintf(stderr, "path %s -> %d\n", not_found[i], rep.status);
        assert_int_equal(rep.status, 404);
        assert_null(strstr(rep.body, KEY_AUTH));
    }
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        http_req(port, methods[i], WK TOKEN, &rep);
        assert_int_equal(rep.status, 405);
        assert_non_null(strstr(rep.head, "Allow: GET, HEAD"));
        assert_null(strstr(rep.body, KEY_AUTH));
    }
    /* A body sent with a POST is never read; the answer still comes. */
    http_raw(AF_INET, port,
             "POST " WK TOKEN " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc", &rep);
    assert_int_equal(rep.status, 405);

    /* Percent-encoding of ordinary characters is decoded before matching. */
    http_req(port, "GET", WK "%4coqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", &rep);
    assert_int_equal(rep.status, 200);

    /* Replaced, then withdrawn. */
    assert_int_equal(responders_http01_add(r, TOKEN, TOKEN ".other"), 0);
    http_req(port, "GET", WK TOKEN, &rep);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.body_len, strlen(TOKEN ".other"));
    assert_memory_equal(rep.body, TOKEN ".other", rep.body_len);
    responders_http01_remove(r, TOKEN);
    http_req(port, "GET", WK TOKEN, &rep);
    assert_int_equal(rep.status, 404);
    responders_http01_remove(r, TOKEN); /* twice is harmless */

    responders_stop(r);
}

static void test_http01_lookup_and_validation(void **state)
{
    struct responders *r = start(NULL, NULL); /* the table works without the server */
    char *ka = (char *)"unchanged";
    char long_tok[RESPONDERS_TOKEN_MAX + 2];

    assert_false(responders_have_http01(r));
    assert_int_equal(responders_http01_port(r), -ENOTCONN);

    assert_int_equal(responders_http01_lookup(r, TOKEN, &ka), -ENOENT);
    assert_null(ka);
    assert_int_equal(responders_http01_add(r, TOKEN, KEY_AUTH), 0);
    assert_int_equal(responders_http01_add(r, "abc_-DEF", "abc_-DEF.x"), 0);
    assert_int_equal(responders_http01_lookup(r, TOKEN, &ka), 0);
    assert_string_equal(ka, KEY_AUTH);
    free(ka);
    assert_int_equal(responders_http01_lookup(r, "abc_-DEF", &ka), 0);
    assert_string_equal(ka, "abc_-DEF.x");
    free(ka);

    /* Tokens outside the base64url alphabet or too long are refused, and never found. */
    const char *bad[] = {"", "a/b", "a.b", "a b", "a%2e", "..", "a\n", "ä", "a+b", "a=b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(responders_http01_add(r, bad[i], "x.y"), -EINVAL);
        assert_int_equal(responders_http01_lookup(r, bad[i], &ka), -ENOENT);
        assert_null(ka);
    }
    assert_int_equal(responders_http01_add(r, NULL, "x.y"), -EINVAL);
    assert_int_equal(responders_http01_add(NULL, TOKEN, "x.y"), -EINVAL);
    memset(long_tok, 'A', sizeof(long_tok) - 2);
    long_tok[RESPONDERS_TOKEN_MAX] = '\0';
    assert_int_equal(responders_http01_add(r, long_tok, "A.b"), 0);
    long_tok[RESPONDERS_TOKEN_MAX] = 'A';
    long_tok[RESPONDERS_TOKEN_MAX + 1] = '\0';
    assert_int_equal(responders_http01_add(r, long_tok, "A.b"), -EINVAL);

    /* Key authorisations: base64url and dots only, bounded. */
    assert_int_equal(responders_http01_add(r, "tok", ""), -EINVAL);
    assert_int_equal(responders_http01_add(r, "tok", "a.b\n"), -EINVAL);
    assert_int_equal(responders_http01_add(r, "tok", "a.b c"), -EINVAL);
    assert_int_equal(responders_http01_add(r, "tok", NULL), -EINVAL);
    char *long_ka = malloc(RESPONDERS_KEY_AUTH_MAX + 2);
    assert_non_null(long_ka);
    memset(long_ka, 'k', RESPONDERS_KEY_AUTH_MAX + 1);
    long_ka[RESPONDERS_KEY_AUTH_MAX + 1] = '\0';
    assert_int_equal(responders_http01_add(r, "tok", long_ka), -EINVAL);
    long_ka[RESPONDERS_KEY_AUTH_MAX] = '\0';
    assert_int_equal(responders_http01_add(r, "tok", long_ka), 0);
    free(long_ka);

    responders_http01_remove(r, TOKEN);
    assert_int_equal(responders_http01_lookup(r, TOKEN, &ka), -ENOENT);
    assert_int_equal(responders_http01_lookup(r, "abc_-DEF", &ka), 0); /* others stay */
    free(ka);
    assert_int_equal(responders_http01_lookup(NULL, TOKEN, &ka), -ENOENT);
    responders_http01_remove(NULL, TOKEN);
    responders_http01_remove(r, NULL);
    responders_stop(r); /* frees what is still published (ASan checks) */
    responders_stop(NULL);
}

/* Many tokens: all findable, all removable (exercises bucket chains). */
static void test_http01_many_tokens(void **state)
{
    struct responders *r = start(NULL, NULL);
    char tok[32], ka[64], *got;

    for (int i = 0; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "t%d", i);
        snprintf(ka, sizeof(ka), "t%d.k", i);
        assert_int_equal(responders_http01_add(r, tok, ka), 0);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(tok, sizeof(tok), "t%d", i);
        responders_http01_remove(r, tok);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "t%d", i);
        int rc = responders_http01_lookup(r, tok, &got);
        if (i % 2) {
            assert_int_equal(rc, 0);
            snprintf(ka, sizeof(ka), "t%d.k", i);
            assert_string_equal(got, ka);
            free(got);
        } else {
            assert_int_equal(rc, -ENOENT);
        }
    }
    responders_stop(r);
}

static void test_http01_ipv6(void **state)
{
    char err[256];
    struct config *cfg = NULL;
    struct responders *r = NULL;
    struct http_reply rep;

    assert_int_equal(config_defaults(&cfg), 0);
    cfg->challenge.http01_listen = strdup("[::1]:0");
    int rc = responders_start(cfg, &r, err, sizeof(err));
    config_free(cfg);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        skip(); /* no IPv6 loopback here */
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(responders_http01_add(r, TOKEN, KEY_AUTH), 0);
    http_raw(AF_INET6, responders_http01_port(r),
             "GET " WK TOKEN " HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n", &rep);
    assert_int_equal(rep.status, 200);
    assert_memory_equal(rep.body, KEY_AUTH, strlen(KEY_AUTH));
    responders_stop(r);
}

static void test_start_errors(void **state)
{
    char err[256];
    const char *bad[] = {"localhost:80",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         "127.0.0.1:8o",
                         "[::1]80",
                         "[::1]:",
                         "::1:80",
                         "[127.0.0.1]:80",
                         "1.2.3:80",
                         ":80",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(start_err(bad[i], NULL, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "http-01"));
        err[0] = '\0';
        assert_int_equal(start_err(NULL, bad[i], err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "tls-alpn-01"));
    }

    /* A port in use: the error names it, and nothing half-started is left behind. */
    struct responders *r = start("127.0.0.1:0", "127.0.0.1:0");
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", responders_http01_port(r));
    assert_int_equal(start_err(addr, NULL, err, sizeof(err)), -EADDRINUSE);
    assert_non_null(strstr(err, addr));
    /* http-01 starts, then tls-alpn-01 fails: the http-01 server is torn down again. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", responders_tlsalpn01_port(r));
    assert_int_equal(start_err("127.0.0.1:0", addr, err, sizeof(err)), -EADDRINUSE);
    responders_stop(r);

    assert_int_equal(responders_start(NULL, &r, err, sizeof(err)), -EINVAL);
}

/* Every fd the responders open is close-on-exec (hooks must not inherit them). */
static void test_fds_cloexec(void **state)
{
    struct responders *r = start("127.0.0.1:0", "127.0.0.1:0");
    char path[64], target[256];
    int checked = 0;

    for (int fd = 3; fd < 1024; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        /* Only sockets, epoll and eventfds are ours; cmocka and ASan have their own files. */
        if (strncmp(target, "socket:", 7) != 0 && !strstr(target, "eventpoll") &&
            !strstr(target, "eventfd"))
            continue;
        if (!(flags & FD_CLOEXEC))
            fprintf(stderr, "fd %d (%s) is not close-on-exec\n", fd, target);
        assert_true(flags & FD_CLOEXEC);
        checked++;
    }
    assert_true(checked >= 3); /* two listening sockets and the eventfd at least */
    responders_stop(r);
}

/* ---- tls-alpn-01 ---- */

#define NAME "example.com"
#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

struct tls_result {
    bool ok;
    char alpn[32];
    gnutls_x509_crt_t crt; /* the server's certificate on success */
};

/*
 * Connects with SNI (NULL: none) offering ALPN (NULL: no extension; otherwise a comma-less
 * single protocol) with PRIORITY (NULL: defaults), and runs the handshake.
 */
static void tls_try(int port, const char *sni, const char *alpn, const char *priority,
                    struct tls_result *res)
{
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    int fd = connect_port(AF_INET, port);

    memset(res, 0, sizeof(*res));
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL), 0);
    if (priority)
        assert_int_equal(gnutls_priority_set_direct(s, priority, NULL), 0);
    else
        assert_int_equal(gnutls_set_default_priority(s), 0);
    assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
    if (sni)
        assert_int_equal(gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni)), 0);
    if (alpn) {
        gnutls_datum_t p = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
        assert_int_equal(gnutls_alpn_set_protocols(s, &p, 1, 0), 0);
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    int ret;
    do {
        ret = gnutls_handshake(s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret == 0) {
        res->ok = true;
        gnutls_datum_t proto;
        if (gnutls_alpn_get_selected_protocol(s, &proto) == 0 && proto.size < sizeof(res->alpn))
            memcpy(res->alpn, proto.data, proto.size);
        unsigned n = 0;
        const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
        assert_int_equal(n, 1);
        assert_int_equal(gnutls_x509_crt_init(&res->crt), 0);
        assert_int_equal(gnutls_x509_crt_import(res->crt, &certs[0], GNUTLS_X509_FMT_DER), 0);
        /* The server closes right after the handshake (RFC 8737 §3). */
        char b;
        ssize_t got = gnutls_record_recv(s, &b, 1);
        assert_true(got <= 0);
    }
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
}

/* Checks CRT is the validation certificate for DNSNAME and KEY_AUTH. */
static void check_validation_cert(gnutls_x509_crt_t crt, const char *dnsname, const char *ka)
{
    uint8_t digest[32], want[34];
    char san[256];
    size_t san_len = sizeof(san);
    unsigned critical = 0;
    gnutls_datum_t ext = {NULL, 0};

    assert_int_equal(gnutls_x509_crt_get_subject_alt_name(crt, 0, san, &san_len, &critical),
                     GNUTLS_SAN_DNSNAME);
    assert_int_equal(san_len, strlen(dnsname));
    assert_memory_equal(san, dnsname, san_len);
    san_len = sizeof(san);
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name(crt, 1, san, &san_len, &critical),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

    assert_int_equal(
        gnutls_x509_crt_get_extension_by_oid2(crt, OID_ACME_IDENTIFIER, 0, &ext, &critical), 0);
    assert_int_equal(critical, 1); /* RFC 8737 §3: MUST be critical */
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, ka, strlen(ka), digest), 0);
    want[0] = 0x04; /* OCTET STRING */
    want[1] = 0x20; /* 32 bytes */
    memcpy(want + 2, digest, 32);
    assert_int_equal(ext.size, sizeof(want));
    assert_memory_equal(ext.data, want, sizeof(want));
    gnutls_free(ext.data);
}

static void test_tlsalpn01_handshakes(void **state)
{
    struct responders *r = start(NULL, "127.0.0.1:0");
    struct tls_result res;
    int port = responders_tlsalpn01_port(r);

    assert_true(responders_have_tlsalpn01(r));
    assert_false(responders_have_http01(r));
    assert_true(port > 0);

    /* Nothing published yet. */
    tls_try(port, NAME, "acme-tls/1", NULL, &res);
    assert_false(res.ok);

    assert_int_equal(responders_tlsalpn01_add(r, NAME, KEY_AUTH), 0);
    tls_try(port, NAME, "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    assert_string_equal(res.alpn, "acme-tls/1");
    check_validation_cert(res.crt, NAME, KEY_AUTH);
    gnutls_x509_crt_deinit(res.crt);

    /* TLS 1.2 works too (RFC 8737 §4), and the SNI matches case-insensitively, with or without
     * a trailing dot. */
    tls_try(port, "EXAMPLE.Com", "acme-tls/1", "NORMAL:-VERS-ALL:+VERS-TLS1.2", &res);
    assert_true(res.ok);
    check_validation_cert(res.crt, NAME, KEY_AUTH);
    gnutls_x509_crt_deinit(res.crt);
    tls_try(port, NAME ".", "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    gnutls_x509_crt_deinit(res.crt);

    /* Refused: no ALPN, another ALPN, no SNI, another SNI, a sub-domain. */
    tls_try(port, NAME, NULL, NULL, &res);
    assert_false(res.ok);
    tls_try(port, NAME, NULL, "NORMAL:-VERS-ALL:+VERS-TLS1.2", &res);
    assert_false(res.ok);
    tls_try(port, NAME, "h2", NULL, &res);
    assert_false(res.ok);
    tls_try(port, NAME, "http/1.1", NULL, &res);
    assert_false(res.ok);
    tls_try(port, NULL, "acme-tls/1", NULL, &res);
    assert_false(res.ok);
    tls_try(port, "example.org", "acme-tls/1", NULL, &res);
    assert_false(res.ok);
    tls_try(port, "www." NAME, "acme-tls/1", NULL, &res);
    assert_false(res.ok);

    /* A second name, then replacing the first one's key authorisation. */
    assert_int_equal(responders_tlsalpn01_add(r, "WWW.Example.com", TOKEN ".second"), 0);
    tls_try(port, "www." NAME, "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    check_validation_cert(res.crt, "www." NAME, TOKEN ".second");
    gnutls_x509_crt_deinit(res.crt);
    assert_int_equal(responders_tlsalpn01_add(r, NAME, TOKEN ".third"), 0);
    tls_try(port, NAME, "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    check_validation_cert(res.crt, NAME, TOKEN ".third");
    gnutls_x509_crt_deinit(res.crt);

    /* Withdrawn: refused again; the other name is unaffected. */
    responders_tlsalpn01_remove(r, "Example.COM");
    tls_try(port, NAME, "acme-tls/1", NULL, &res);
    assert_false(res.ok);
    tls_try(port, "www." NAME, "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    gnutls_x509_crt_deinit(res.crt);
    responders_tlsalpn01_remove(r, NAME); /* twice is harmless */
    responders_tlsalpn01_remove(r, "not a name");
    responders_tlsalpn01_remove(NULL, NAME);

    responders_stop(r); /* www.example.com is still published: freed here */
}

static void test_tlsalpn01_add_errors(void **state)
{
    struct responders *r = start(NULL, "127.0.0.1:0");
    const char *bad_names[] = {"",          "*.example.com",  "bad_name.example.com", "localhost",
                               "127.0.0.1", "-a.example.com", "a..example.com"};

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(responders_tlsalpn01_add(r, bad_names[i], KEY_AUTH), -EINVAL);
    assert_int_equal(responders_tlsalpn01_add(r, NAME, "bad key auth"), -EINVAL);
    assert_int_equal(responders_tlsalpn01_add(r, NAME, ""), -EINVAL);
    assert_int_equal(responders_tlsalpn01_add(r, NULL, KEY_AUTH), -EINVAL);
    assert_int_equal(responders_tlsalpn01_add(NULL, NAME, KEY_AUTH), -EINVAL);
    responders_stop(r);

    /* Server off: nothing could answer, so the add says so. */
    r = start("127.0.0.1:0", NULL);
    assert_int_equal(responders_tlsalpn01_add(r, NAME, KEY_AUTH), -ENOTCONN);
    responders_stop(r);
}

struct churn {
    struct responders *r;
    atomic_bool stop;
    int rounds;
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    while (!c->stop) {
        if (responders_tlsalpn01_add(c->r, NAME, KEY_AUTH) != 0)
            break;
        usleep(1000);
        responders_tlsalpn01_remove(c->r, NAME);
        c->rounds++;
    }
    return NULL;
}

/* Publishing and withdrawing while handshakes run: every handshake either fails or gets the
 * whole, right certificate, and nothing is used after being freed (ASan). */
static void test_tlsalpn01_concurrent_churn(void **state)
{
    struct responders *r = start(NULL, "127.0.0.1:0");
    struct churn c = {.r = r};
    pthread_t th;
    struct tls_result res;
    int ok = 0;

    assert_int_equal(pthread_create(&th, NULL, churn_main, &c), 0);
    for (int i = 0; i < 40; i++) {
        tls_try(responders_tlsalpn01_port(r), NAME, "acme-tls/1", NULL, &res);
        if (res.ok) {
            check_validation_cert(res.crt, NAME, KEY_AUTH);
            gnutls_x509_crt_deinit(res.crt);
            ok++;
        }
    }
    c.stop = true;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(c.rounds > 0);
    fprintf(stderr, "churn: %d of 40 handshakes found the certificate, %d add/remove rounds\n", ok,
            c.rounds);
    responders_stop(r);
}

/* Clients that connect and say nothing hold handshake threads; stop must still be prompt, and a
 * real validation must still get through while a few are stalled. */
static void test_stop_is_prompt(void **state)
{
    struct responders *r = start("127.0.0.1:0", "127.0.0.1:0");
    int fds[6];
    struct tls_result res;

    assert_int_equal(responders_tlsalpn01_add(r, NAME, KEY_AUTH), 0);
    for (size_t i = 0; i < 3; i++)
        fds[i] = connect_port(AF_INET, responders_tlsalpn01_port(r));
    for (size_t i = 3; i < 6; i++)
        fds[i] = connect_port(AF_INET, responders_http01_port(r));
    usleep(100 * 1000); /* let the threads pick the stalled connections up */

    tls_try(responders_tlsalpn01_port(r), NAME, "acme-tls/1", NULL, &res);
    assert_true(res.ok);
    gnutls_x509_crt_deinit(res.crt);

    int64_t t0 = now_ms();
    responders_stop(r);
    int64_t took = now_ms() - t0;
    assert_true(took < 2000);

    /* The stalled connections were closed by the server. */
    for (size_t i = 0; i < 6; i++) {
        char b;
        assert_true(recv(fds[i], &b, 1, 0) <= 0);
        close(fds[i]);
    }
}

/* A client that stops mid-handshake is dropped at the deadline, not held forever. Uses the
 * real 10 s deadline, so it is the slowest test here. */
static void test_tlsalpn01_handshake_deadline(void **state)
{
    struct responders *r = start(NULL, "127.0.0.1:0");
    int fd = connect_port(AF_INET, responders_tlsalpn01_port(r));
    struct timeval tv = {.tv_sec = 20};
    char b;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int64_t t0 = now_ms();
    ssize_t n = recv(fd, &b, 1, 0); /* the server closes: 0 (or a reset) */
    int64_t took = now_ms() - t0;
    assert_true(n <= 0);
    assert_true(took >= 9000 && took < 15000);
    close(fd);
    responders_stop(r);
}

/* ---- dns-01 ---- */

static char tmpdir[512];

static int setup_tmpdir(void **state)
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmpdir, sizeof(tmpdir), "%s/acme-responders-XXXXXX", base);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes an executable /bin/sh script NAME with BODY into the temp dir; returns its path. */
static const char *write_hook(const char *name, const char *body)
{
    static char path[700];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0700), 0);
    return path;
}

static char *read_file(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

#define FQDN "_acme-challenge.example.com."
#define VALUE "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"

static void test_dns01_args_and_env(void **state)
{
    char body[2048], hook[1024], out[700], env[700], err[512] = "x";

    snprintf(out, sizeof(out), "%s/args", tmpdir);
    snprintf(env, sizeof(env), "%s/env", tmpdir);
    snprintf(body, sizeof(body), "printf '%%s\\n' \"$@\" > '%s'\nenv > '%s'", out, env);
    const char *path = write_hook("args.sh", body);

    /* Words of the configured line come first, quoted words stay one argument. */
    snprintf(hook, sizeof(hook), "%s 'first arg' --zone=\"example.com\"", path);
    setenv("CERTD_TEST_LEAK", "must-not-be-seen", 1);
    assert_int_equal(responders_dns01_run(hook, 10, "add", FQDN, VALUE, err, sizeof(err)), 0);
    assert_string_equal(read_file(out),
                        "first arg\n--zone=example.com\nadd\n" FQDN "\n" VALUE "\n");
    const char *e = read_file(env);
    assert_non_null(strstr(e, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
    assert_null(strstr(e, "CERTD_TEST_LEAK"));
    assert_null(strstr(e, "HOME="));
    unsetenv("CERTD_TEST_LEAK");

    assert_int_equal(responders_dns01_run(path, 10, "del", FQDN, VALUE, err, sizeof(err)), 0);
    assert_string_equal(read_file(out), "del\n" FQDN "\n" VALUE "\n");
}

static void test_dns01_failure_status(void **state)
{
    char err[512], hook[1024];
    const char *path =
        write_hook("fail.sh", "printf 'boom\\nsecond line\\001\\t end\\n' >&2\nexit 3");

    /* The rest of the configured line may hold credentials: it never appears in ERR. */
    snprintf(hook, sizeof(hook), "%s --api-token=S3CR3T", path);
    assert_int_equal(responders_dns01_run(hook, 10, "add", FQDN, VALUE, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "status 3"));
    assert_non_null(strstr(err, "boom second line end"));
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "S3CR3T"));
    assert_null(strstr(err, VALUE));
    for (const char *p = err; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);

    /* Only stdout: that is the explanation then. */
    path = write_hook("stdout.sh", "echo 'zone not found'\nexit 1");
    assert_int_equal(responders_dns01_run(path, 10, "add", FQDN, VALUE, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "status 1: zone not found"));

    /* Killed by a signal. */
    path = write_hook("kill.sh", "kill -KILL $$");
    assert_int_equal(responders_dns01_run(path, 10, "add", FQDN, VALUE, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "signal 9"));

    /* A flood of stderr is cut, and ERR stays within its size. */
    path = write_hook("flood.sh", "i=0; while [ $i -lt 3000 ]; do echo \"line $i\" >&2; "
                                  "i=$((i+1)); done; exit 4");
    char small[200];
    assert_int_equal(responders_dns01_run(path, 10, "add", FQDN, VALUE, small, sizeof(small)),
                     -EIO);
    assert_non_null(strstr(small, "status 4: line 0 line 1"));
    assert_true(strlen(small) < sizeof(small));
    assert_int_equal(responders_dns01_run(path, 10, "add", FQDN, VALUE, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "..."));
}

static void test_dns01_timeout(void **state)
{
    char err[512];
    const char *path = write_hook("slow.sh", "echo started >&2\nsleep 30");

    int64_t t0 = now_ms();
    assert_int_equal(responders_dns01_run(path, 1, "add", FQDN, VALUE, err, sizeof(err)), -EIO);
    int64_t took = now_ms() - t0;
    assert_true(took >= 900 && took < 4000);
    assert_non_null(strstr(err, "timed out after 1 s"));
    assert_non_null(strstr(err, "started"));
}

static void test_dns01_bad_hooks(void **state)
{
    char err[512], hook[1024];

    assert_int_equal(
        responders_dns01_run("/nonexistent/hook", 5, "add", FQDN, VALUE, err, sizeof(err)),
        -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/hook"));

    /* Not executable. */
    const char *path = write_hook("noexec.sh", "exit 0");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(responders_dns01_run(path, 5, "add", FQDN, VALUE, err, sizeof(err)), -EACCES);

    /* cmdline_split refuses: relative path, unterminated quote, empty. */
    assert_int_equal(responders_dns01_run("hook.sh", 5, "add", FQDN, VALUE, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "dns-01 hook"));
    snprintf(hook, sizeof(hook), "%s 'open", path);
    assert_int_equal(responders_dns01_run(hook, 5, "add", FQDN, VALUE, err, sizeof(err)), -EINVAL);
    assert_int_equal(responders_dns01_run("", 5, "add", FQDN, VALUE, err, sizeof(err)), -EINVAL);

    /* Bad arguments. */
    path = write_hook("ok.sh", "exit 0");
    assert_int_equal(responders_dns01_run(path, 5, "add", FQDN, VALUE, err, sizeof(err)), 0);
    assert_int_equal(responders_dns01_run(path, 5, "upsert", FQDN, VALUE, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(responders_dns01_run(path, 0, "add", FQDN, VALUE, err, sizeof(err)), -EINVAL);
    assert_int_equal(responders_dns01_run(path, 5, "add", FQDN "\nx", VALUE, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(responders_dns01_run(path, 5, "add", FQDN, "", err, sizeof(err)), -EINVAL);
    assert_int_equal(responders_dns01_run(path, 5, "add", NULL, VALUE, err, sizeof(err)), -EINVAL);
    assert_int_equal(responders_dns01_run(NULL, 5, "add", FQDN, VALUE, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http01_serves_token),
        cmocka_unit_test(test_http01_lookup_and_validation),
        cmocka_unit_test(test_http01_many_tokens),
        cmocka_unit_test(test_http01_ipv6),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_fds_cloexec),
        cmocka_unit_test(test_tlsalpn01_handshakes),
        cmocka_unit_test(test_tlsalpn01_add_errors),
        cmocka_unit_test(test_tlsalpn01_concurrent_churn),
        cmocka_unit_test(test_stop_is_prompt),
        cmocka_unit_test(test_tlsalpn01_handshake_deadline),
        cmocka_unit_test(test_dns01_args_and_env),
        cmocka_unit_test(test_dns01_failure_status),
        cmocka_unit_test(test_dns01_timeout),
        cmocka_unit_test(test_dns01_bad_hooks),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
