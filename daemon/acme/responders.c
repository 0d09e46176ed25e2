/* Challenge responders: start/stop, the shared token map and the listening sockets. The servers
 * themselves are in resp_http01.c and resp_tlsalpn01.c, the dns-01 hook in resp_dns01.c. */
#include "acme/resp_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

#define RESP_LISTEN_BACKLOG 128

/* ---- map ---- */

/* FNV-1a. Keys are tokens the CA chose or names we validate, not attacker-chosen, so a keyed
 * hash is not needed to keep chains short. */
static size_t bucket_of(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return (size_t)(h % RESP_MAP_BUCKETS);
}

void *resp_map_get(const struct resp_map *m, const char *key)
{
    for (const struct resp_map_entry *e = m->buckets[bucket_of(key)]; e; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e->value;
    }
    return NULL;
}

int resp_map_put(struct resp_map *m, const char *key, void *value, void **old)
{
    struct resp_map_entry **head = &m->buckets[bucket_of(key)];
    *old = NULL;
    for (struct resp_map_entry *e = *head; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            *old = e->value;
            e->value = value;
            return 0;
        }
    }
    if (m->count >= m->max)
        return -ENOSPC;
    size_t klen = strlen(key);
    struct resp_map_entry *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->key, key, klen + 1);
    e->value = value;
    e->next = *head;
    *head = e;
    m->count++;
    return 0;
}

void *resp_map_take(struct resp_map *m, const char *key)
{
    for (struct resp_map_entry **pp = &m->buckets[bucket_of(key)]; *pp; pp = &(*pp)->next) {
        struct resp_map_entry *e = *pp;
        if (strcmp(e->key, key) == 0) {
            void *value = e->value;
            *pp = e->next;
            free(e);
            m->count--;
            return value;
        }
    }
    return NULL;
}

void resp_map_clear(struct resp_map *m, void (*free_value)(void *))
{
    for (size_t i = 0; i < RESP_MAP_BUCKETS; i++) {
        struct resp_map_entry *e = m->buckets[i];
        while (e) {
            struct resp_map_entry *next = e->next;
            free_value(e->value);
            free(e);
            e = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
}

/* ---- validation ---- */

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool resp_token_valid(const char *token)
{
    if (!token)
        return false;
    size_t n = 0;
    for (; token[n]; n++) {
        if (n >= RESPONDERS_TOKEN_MAX || !is_b64url_char(token[n]))
            return false;
    }
    return n > 0;
}

bool resp_key_auth_valid(const char *key_auth)
{
    if (!key_auth)
        return false;
    size_t n = 0;
    for (; key_auth[n]; n++) {
        if (n >= RESPONDERS_KEY_AUTH_MAX || (!is_b64url_char(key_auth[n]) && key_auth[n] != '.'))
            return false;
    }
    return n > 0;
}

/* ---- sockets ---- */

/* Same syntax config.c accepts, plus port 0. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN];
    const char *port;
    size_t n;

    memset(ss, 0, sizeof(*ss));
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        n = close ? (size_t)(close - spec - 1) : 0;
        if (!close || close[1] != ':' || n == 0 || n >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec + 1, n);
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        n = colon ? (size_t)(colon - spec) : 0;
        if (!colon || n == 0 || n >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec, n);
        port = colon + 1;
    }
    host[n] = '\0';

    if (port[0] < '0' || port[0] > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long p = strtoul(port, &end, 10);
    if (errno || *end || p > 65535)
        return -EINVAL;

    if (spec[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a4);
    }
    return 0;
}

int resp_listen(const char *spec, const char *what, int *fd_out, char *err, size_t errsz)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int fd = -1, rc;

    if (parse_listen(spec, &ss, &sslen) < 0) {
        snprintf(err, errsz, "%s listen address '%s': expected IPV4:PORT or [IPV6]:PORT", what,
                 spec);
        return -EINVAL;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errsz, "%s: socket: %s", what, strerror(errno));
        goto out;
    }
    /* So a restart does not wait out TIME_WAIT connections from the previous run. */
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        rc = -errno;
        snprintf(err, errsz, "%s: SO_REUSEADDR: %s", what, strerror(errno));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        rc = -errno;
        snprintf(err, errsz, "%s: bind %s: %s", what, spec, strerror(errno));
        goto out;
    }
    if (listen(fd, RESP_LISTEN_BACKLOG) < 0) {
        rc = -errno;
        snprintf(err, errsz, "%s: listen on %s: %s", what, spec, strerror(errno));
        goto out;
    }
    *fd_out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int resp_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* ---- lifecycle ---- */

int responders_start(const struct config *cfg, struct responders **out, char *err, size_t errsz)
{
    struct responders *r = NULL;
    int fd = -1, rc;

    if (!cfg || !out)
        return -EINVAL;
    r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&r->tokens_lock, NULL);
    r->tokens.max = RESPONDERS_MAX_TOKENS;
    r->http_port = -ENOTCONN;
    r->tls_port = -ENOTCONN;

    if (cfg->challenge.http01_listen) {
        rc = resp_listen(cfg->challenge.http01_listen, "http-01", &fd, err, errsz);
        if (rc < 0)
            goto out;
        int port = resp_local_port(fd);
        rc = resp_http01_start(r, fd, err, errsz); /* takes FD */
        if (rc < 0)
            goto out;
        r->http_port = port;
        log_info("http-01 responder listening on %s (port %d)", cfg->challenge.http01_listen, port);
    }
    if (cfg->challenge.tlsalpn01_listen) {
        rc = resp_listen(cfg->challenge.tlsalpn01_listen, "tls-alpn-01", &fd, err, errsz);
        if (rc < 0)
            goto out;
        int port = resp_local_port(fd);
        rc = resp_tlsalpn_start(fd, &r->tls, err, errsz); /* takes FD */
        if (rc < 0)
            goto out;
        r->tls_port = port;
        log_info("tls-alpn-01 responder listening on %s (port %d)", cfg->challenge.tlsalpn01_listen,
                 port);
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    responders_stop(r);
    return rc;
}

static void free_key_auth(void *p)
{
    free(p);
}

void responders_stop(struct responders *r)
{
    if (!r)
        return;
    /* Servers first: after this no thread reads the tables. */
    resp_tlsalpn_stop(r->tls);
    resp_http01_stop(r);
    resp_map_clear(&r->tokens, free_key_auth);
    pthread_mutex_destroy(&r->tokens_lock);
    free(r);
}

bool responders_have_http01(const struct responders *r)
{
    return r && r->http;
}

bool responders_have_tlsalpn01(const struct responders *r)
{
    return r && r->tls;
}

int responders_http01_port(const struct responders *r)
{
    return r && r->http ? r->http_port : -ENOTCONN;
}

int responders_tlsalpn01_port(const struct responders *r)
{
    return r && r->tls ? r->tls_port : -ENOTCONN;
}

int responders_tlsalpn01_add(struct responders *r, const char *name, const char *key_auth)
{
    if (!r || !name || !key_auth)
        return -EINVAL;
    if (!r->tls)
        return -ENOTCONN;
    return resp_tlsalpn_add(r->tls, name, key_auth);
}

void responders_tlsalpn01_remove(struct responders *r, const char *name)
{
    if (r && r->tls && name)
        resp_tlsalpn_remove(r->tls, name);
}
