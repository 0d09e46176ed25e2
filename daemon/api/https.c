/* The HTTPS listener's start-up half: its TCP socket and its certificate, key and client CA,
 * all taken while certd still has the privileges to bind the port and read the key. */
#include "api/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

/* A certificate chain, a key or a CA bundle: far below this. */
#define TLS_FILE_MAX (1024 * 1024)

void api_tls_listener_free(struct api_tls_listener *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->cert_pem);
    if (l->key_pem) {
        gnutls_memset(l->key_pem, 0, strlen(l->key_pem));
        free(l->key_pem);
    }
    free(l->trust_pem);
    free(l);
}

/* Reads PATH (at most TLS_FILE_MAX bytes) into a NUL-terminated buffer. A buffer that held a key
 * is wiped on every path out, the error ones included. */
static int read_pem(const char *path, const char *what, char **out, char *err, size_t errsz)
{
    char *buf = NULL;
    size_t len = 0;
    int ret;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errsz, "[api.https] %s %s: %s", what, path, strerror(errno));
        return ret;
    }
    buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        ret = -ENOMEM;
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, TLS_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            snprintf(err, errsz, "[api.https] %s %s: %s", what, path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > TLS_FILE_MAX) {
            ret = -EFBIG;
            snprintf(err, errsz, "[api.https] %s %s: larger than %d bytes", what, path,
                     TLS_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    buf[len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        gnutls_memset(buf, 0, len);
        free(buf);
        snprintf(err, errsz, "[api.https] %s %s: not a PEM file", what, path);
        return -EINVAL;
    }
    *out = buf;
    return 0;
fail:
    if (buf) {
        gnutls_memset(buf, 0, TLS_FILE_MAX + 1);
        free(buf);
    }
    close(fd);
    return ret;
}

/* Tries the material the way libmicrohttpd will, so a bad file stops certd at start with the
 * file named rather than as "cannot start the HTTPS server" later. */
static int check_material(const struct config *cfg, const struct api_tls_listener *l, char *err,
                          size_t errsz)
{
    gnutls_certificate_credentials_t cred = NULL;
    int ret = -EINVAL;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return -ENOMEM;
    gnutls_datum_t cert = {(unsigned char *)l->cert_pem, (unsigned)strlen(l->cert_pem)};
    gnutls_datum_t key = {(unsigned char *)l->key_pem, (unsigned)strlen(l->key_pem)};
    int r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        snprintf(err, errsz, "[api.https] cert %s and key %s: %s", cfg->https.cert, cfg->https.key,
                 gnutls_strerror(r));
        goto out;
    }
    if (l->trust_pem) {
        gnutls_datum_t ca = {(unsigned char *)l->trust_pem, (unsigned)strlen(l->trust_pem)};
        r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (r <= 0) {
            snprintf(err, errsz, "[api.https] client_ca %s: %s", cfg->https.client_ca,
                     r < 0 ? gnutls_strerror(r) : "no certificate in it");
            goto out;
        }
    }
    ret = 0;
out:
    gnutls_certificate_free_credentials(cred);
    return ret;
}

/* LISTEN is "IPV4:PORT" or "[IPV6]:PORT", as the configuration checked it. */
static int bind_listen(const char *listen_spec, char *err, size_t errsz)
{
    char host[64], port[8];
    const char *colon = strrchr(listen_spec, ':');
    const char *h = listen_spec;
    size_t hlen = colon ? (size_t)(colon - listen_spec) : 0;
    if (hlen > 1 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (!colon || hlen == 0 || hlen >= sizeof(host) || strlen(colon + 1) >= sizeof(port)) {
        snprintf(err, errsz, "[api.https] listen %s: not ADDR:PORT", listen_spec);
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, sizeof(port), "%s", colon + 1);

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r != 0 || !ai) {
        snprintf(err, errsz, "[api.https] listen %s: %s", listen_spec, gai_strerror(r));
        return -EINVAL;
    }
    int ret;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errsz, "[api.https] socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    /* A restart must not wait for the previous run's connections in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        ret = -errno;
        snprintf(err, errsz, "[api.https] listen %s: %s", listen_spec, strerror(errno));
        close(fd);
        goto out;
    }
    ret = fd;
out:
    freeaddrinfo(ai);
    return ret;
}

int api_tls_listener_open(const struct config *cfg, struct api_tls_listener **out, char *err,
                          size_t errsz)
{
    *out = NULL;
    if (!cfg->https.listen)
        return 0;
    struct api_tls_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    l->fd = -1;
    snprintf(l->listen, sizeof(l->listen), "%s", cfg->https.listen);
    int ret;
    if ((ret = read_pem(cfg->https.cert, "cert", &l->cert_pem, err, errsz)) < 0 ||
        (ret = read_pem(cfg->https.key, "key", &l->key_pem, err, errsz)) < 0 ||
        (cfg->https.client_ca &&
         (ret = read_pem(cfg->https.client_ca, "client_ca", &l->trust_pem, err, errsz)) < 0) ||
        (ret = check_material(cfg, l, err, errsz)) < 0)
        goto fail;
    if ((ret = bind_listen(cfg->https.listen, err, errsz)) < 0)
        goto fail;
    l->fd = ret;
    *out = l;
    return 0;
fail:
    api_tls_listener_free(l);
    return ret;
}
