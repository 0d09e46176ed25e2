/* The REST API: its listening socket and the HTTP server around it. */
#ifndef CERTD_API_API_H
#define CERTD_API_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store;
struct config_holder;
struct scheduler;
struct responders;
struct events_bus;
struct delivery_index;

/* What request handlers may reach. Borrowed by the server; outlives it. */
struct api_context {
    struct store *store;
    struct config_holder *config;
    struct scheduler *scheduler;    /* poked when the plan changes */
    struct responders *responders;  /* http-01 tokens for fleet proxies */
    struct events_bus *events;      /* "events were committed" fan-out (api/events_bus.h) */
    struct delivery_index *index;   /* current bundles for delivery (api/index.h) */
    int64_t started_at;     /* Unix seconds */
    uid_t daemon_uid;       /* after any privilege drop */
};

/*
 * Creates the unix listening socket at PATH with MODE and (when GROUP is not NULL) that group.
 * The umask is tightened before bind(), so the socket never exists with looser permissions than
 * MODE. A stale socket file at PATH is replaced (the caller holds the state lock, so no live
 * certd owns it); any other kind of file there is an error. Returns the fd (close-on-exec) or a
 * negative errno with a reason in ERR.
 */
int api_socket_bind(const char *path, mode_t mode, const char *group, char *err, size_t errsz);

struct api_server;

/* Starts serving LISTEN_FD (ownership passes to the server). Returns 0 or a negative errno. */
int api_server_start(int listen_fd, struct api_context *ctx, struct api_server **out);

struct config;
struct api_tls_listener;

/*
 * The HTTPS listener for remote fleet members ([api.https] of CFG): binds its TCP socket and
 * reads its certificate, key and client CA, which must happen before privileges are dropped.
 * Returns 0 with *OUT NULL when CFG has no [api.https]; 0 with *OUT set; or a negative errno
 * with a reason naming the file or address in ERR (bad PEM, key not matching the certificate,
 * address in use, ...).
 */
int api_tls_listener_open(const struct config *cfg, struct api_tls_listener **out, char *err,
                          size_t errsz);
/* Closes the socket and frees L, wiping the key. NULL-safe. */
void api_tls_listener_free(struct api_tls_listener *l);

/*
 * Serves L over HTTPS (TLS 1.2 and 1.3 only; a plain-HTTP client gets its connection closed)
 * with the same routes as the socket; callers authenticate with tokens (api_auth_identify).
 * Ownership of L passes to the server, even on failure. Returns 0 or a negative errno.
 */
int api_server_start_https(struct api_tls_listener *l, struct api_context *ctx,
                           struct api_server **out);

/* Stops accepting, lets requests in progress finish, and frees the server. NULL-safe. */
void api_server_stop(struct api_server *srv);

#endif
