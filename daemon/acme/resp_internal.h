/* Private to the challenge responders (responders.c, resp_*.c): the shared state, a small string
 * map and the listening-socket helper. */
#ifndef CERTD_ACME_RESP_INTERNAL_H
#define CERTD_ACME_RESP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "acme/responders.h"

/* ---- string-keyed hash map; the caller does the locking ---- */

#define RESP_MAP_BUCKETS 1024

struct resp_map_entry {
    struct resp_map_entry *next;
    void *value;
    char key[]; /* NUL-terminated */
};

struct resp_map {
    struct resp_map_entry *buckets[RESP_MAP_BUCKETS];
    size_t count;
    size_t max; /* the most entries put accepts */
};

/* The value stored under KEY, or NULL. */
void *resp_map_get(const struct resp_map *m, const char *key);
/* Stores VALUE under KEY. When KEY was there, its previous value goes to *OLD (else *OLD = NULL)
 * for the caller to free. Returns 0, -ENOSPC when M holds max entries and KEY is new, -ENOMEM. */
int resp_map_put(struct resp_map *m, const char *key, void *value, void **old);
/* Removes KEY and returns its value (the caller frees it), or NULL when absent. */
void *resp_map_take(struct resp_map *m, const char *key);
/* Removes every entry, passing each value to FREE_VALUE. */
void resp_map_clear(struct resp_map *m, void (*free_value)(void *));

/* ---- validation ---- */

/* 1..RESPONDERS_TOKEN_MAX characters of the base64url alphabet (RFC 8555 §8.3 token). */
bool resp_token_valid(const char *token);
/* 1..RESPONDERS_KEY_AUTH_MAX characters of base64url and '.' (RFC 8555 §8.1 key authorisation). */
bool resp_key_auth_valid(const char *key_auth);

/* ---- sockets ---- */

/*
 * Creates a listening TCP socket (SOCK_CLOEXEC | SOCK_NONBLOCK, SO_REUSEADDR) bound to SPEC,
 * "IPV4:PORT" or "[IPV6]:PORT", port 0..65535. WHAT ("http-01") prefixes the reason in ERR.
 * Returns 0 and *FD_OUT, -EINVAL for a malformed SPEC, or the failing call's negative errno.
 */
int resp_listen(const char *spec, const char *what, int *fd_out, char *err, size_t errsz);
/* The local port FD is bound to, or a negative errno. */
int resp_local_port(int fd);

/* ---- the servers ---- */

struct MHD_Daemon;
struct resp_tlsalpn;

struct responders {
    pthread_mutex_t tokens_lock;
    struct resp_map tokens; /* http-01 token -> key authorisation (char *) */

    struct MHD_Daemon *http;
    int http_port;

    struct resp_tlsalpn *tls;
    int tls_port;
};

/* Starts MHD on LISTEN_FD, which it takes over (also on failure, see the definition). Returns 0
 * or -EIO with ERR set. */
int resp_http01_start(struct responders *r, int listen_fd, char *err, size_t errsz);
void resp_http01_stop(struct responders *r);

/* Starts the tls-alpn-01 threads on LISTEN_FD, which it takes over (closed on failure too).
 * Returns 0 or a negative errno with ERR set. */
int resp_tlsalpn_start(int listen_fd, struct resp_tlsalpn **out, char *err, size_t errsz);
/* Wakes and joins the threads, frees every published certificate. NULL-safe. */
void resp_tlsalpn_stop(struct resp_tlsalpn *t);
int resp_tlsalpn_add(struct resp_tlsalpn *t, const char *name, const char *key_auth);
void resp_tlsalpn_remove(struct resp_tlsalpn *t, const char *name);

#endif
