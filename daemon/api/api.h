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

/* What request handlers may reach. Borrowed by the server; outlives it. */
struct api_context {
    struct store *store;
    struct config_holder *config;
    struct scheduler *scheduler;    /* poked when the plan changes */
    struct responders *responders;  /* http-01 tokens for fleet proxies */
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

/* Stops accepting, lets requests in progress finish, and frees the server. NULL-safe. */
void api_server_stop(struct api_server *srv);

#endif
