/*
 * Accepts the connections of one listening socket and spreads them over several libmicrohttpd
 * daemons (one thread each), to the one holding the fewest.
 *
 * libmicrohttpd's own thread pool lets every worker race for each new connection; a burst of
 * connections (a proxy opening its keep-alive pool, a benchmark) then mostly lands on one thread
 * and the others idle, 90/10 on two threads as measured by tests/bench/delivery. Accepting in
 * one place and handing each connection over with MHD_add_connection keeps them even.
 *
 * Optionally a limit of connections per client address (IPv4, or IPv6 as is; libmicrohttpd's
 * own limit skips connections handed to it): an address holding that many when a new one
 * arrives has it closed. A connection counts from when it is handed over until its daemon
 * reports it closed (MHD_CONNECTION_NOTIFY_CLOSED). A client that closes connections and opens
 * new ones at once can find its old ones still counted for the moment the daemon takes to see
 * them closed.
 *
 * Only for TCP listeners: a unix socket's connections handed to libmicrohttpd are taken for TCP
 * (it tries TCP options on them at every response).
 */
#ifndef CERTD_API_ACCEPTOR_H
#define CERTD_API_ACCEPTOR_H

#include <microhttpd.h>
#include <stddef.h>

struct api_acceptor;

#define API_ACCEPTOR_SHARDS_MAX 16

/*
 * An acceptor for LISTEN_FD (non-blocking; owned from here, closed by api_acceptor_free) over
 * SHARDS daemons (1..API_ACCEPTOR_SHARDS_MAX), PER_ADDR_LIMIT connections per client address
 * (0: no limit). Start each daemon with MHD_OPTION_NOTIFY_CONNECTION, api_acceptor_notify,
 * api_acceptor_shard(A, I), then call api_acceptor_run. 0 or -errno (LISTEN_FD closed then).
 */
int api_acceptor_new(int listen_fd, size_t shards, unsigned per_addr_limit,
                     struct api_acceptor **out);

/* The MHD_OPTION_NOTIFY_CONNECTION callback, with api_acceptor_shard(A, I) as its cls. */
void api_acceptor_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
void *api_acceptor_shard(struct api_acceptor *a, size_t i);

/* Starts accepting into DAEMONS (one per shard, each started with MHD_USE_NO_LISTEN_SOCKET and
 * MHD_USE_ITC). 0 or -errno. */
int api_acceptor_run(struct api_acceptor *a, struct MHD_Daemon *const *daemons);

/* Stops accepting (waits for the thread) and closes the listening socket. Connections already
 * handed over stay with their daemons. NULL-safe. */
void api_acceptor_stop(struct api_acceptor *a);

/* Stops (if still running) and frees A: only once the daemons it fed are stopped, since they
 * report closing connections to it. NULL-safe. */
void api_acceptor_free(struct api_acceptor *a);

#endif
