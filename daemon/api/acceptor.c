/* One accepting thread in front of several libmicrohttpd daemons (see acceptor.h). */
#include "api/acceptor.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* Connections accepted per wake-up before looking at the stop signal again. */
#define ACCEPT_BURST 64
/* How long accepting pauses when the process is out of descriptors or memory: the pending
 * connections wait in the backlog instead of spinning this thread. */
#define ACCEPT_PAUSE_MS 100
/* Client addresses tracked for the per-address limit; beyond that (more distinct clients than
 * the daemons take connections) new addresses go uncounted. */
#define ADDR_SLOTS 4096

struct shard {
    struct api_acceptor *owner;
    atomic_uint live; /* connections started and not closed yet */
};

struct addr_count {
    uint8_t key[16];
    unsigned count;
};

/* A connection handed to a daemon that has not started serving it yet. */
struct pending {
    int fd;
    uint8_t key[16];
};
/* Connections in that state at once: they leave it within microseconds. */
#define PENDING_MAX 256

struct api_acceptor {
    int listen_fd;
    int stop_fd; /* eventfd: api_acceptor_free wakes the thread with it */
    size_t shard_count;
    struct shard shards[API_ACCEPTOR_SHARDS_MAX];
    struct MHD_Daemon *daemons[API_ACCEPTOR_SHARDS_MAX];
    size_t next; /* where the search for the least loaded shard starts: ties rotate */

    unsigned per_addr_limit;
    pthread_mutex_t addr_lock; /* guards addrs and pending */
    size_t addr_used;
    struct addr_count *addrs; /* ADDR_SLOTS when there is a limit, else NULL */
    size_t pending_used;
    struct pending pending[PENDING_MAX];

    pthread_t thread;
    bool running;
};

/* A connection counted against its address carries this as its socket context. */
static char counted_marker;

/* The client's address as 16 bytes (IPv4 as v4-mapped IPv6); false for other families. */
static bool addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* The caller holds addr_lock. */
static struct addr_count *addr_find(struct api_acceptor *a, const uint8_t key[16])
{
    for (size_t i = 0; i < a->addr_used; i++) {
        if (memcmp(a->addrs[i].key, key, 16) == 0)
            return &a->addrs[i];
    }
    return NULL;
}

/* The caller holds addr_lock. */
static void pending_remove(struct api_acceptor *a, int fd)
{
    for (size_t i = 0; i < a->pending_used; i++) {
        if (a->pending[i].fd == fd) {
            a->pending[i] = a->pending[--a->pending_used];
            return;
        }
    }
}

/*
 * Takes a connection of KEY on socket FD for its address's count unless the address holds
 * per_addr_limit connections, counting those started and those handed over but not started.
 * A handed-over connection whose daemon dropped it before starting it leaves an entry behind;
 * the next connection accepted on the same descriptor number (the lowest free one is reused
 * at once) replaces it.
 */
static bool pending_add(struct api_acceptor *a, int fd, const uint8_t key[16])
{
    pthread_mutex_lock(&a->addr_lock);
    pending_remove(a, fd);
    struct addr_count *c = addr_find(a, key);
    unsigned held = c ? c->count : 0;
    for (size_t i = 0; i < a->pending_used; i++)
        held += memcmp(a->pending[i].key, key, 16) == 0;
    bool ok = held < a->per_addr_limit;
    if (ok) {
        if (a->pending_used == PENDING_MAX) /* daemons far behind: forget one */
            a->pending[0] = a->pending[--a->pending_used];
        a->pending[a->pending_used].fd = fd;
        memcpy(a->pending[a->pending_used].key, key, 16);
        a->pending_used++;
    }
    pthread_mutex_unlock(&a->addr_lock);
    return ok;
}

static void pending_drop(struct api_acceptor *a, int fd)
{
    pthread_mutex_lock(&a->addr_lock);
    pending_remove(a, fd);
    pthread_mutex_unlock(&a->addr_lock);
}

/* Counts a started connection of KEY on socket FD (no longer pending); false when the table
 * is full (the connection then goes uncounted). */
static bool addr_add(struct api_acceptor *a, int fd, const uint8_t key[16])
{
    bool counted = true;
    pthread_mutex_lock(&a->addr_lock);
    pending_remove(a, fd);
    struct addr_count *c = addr_find(a, key);
    if (c) {
        c->count++;
    } else if (a->addr_used < ADDR_SLOTS) {
        c = &a->addrs[a->addr_used++];
        memcpy(c->key, key, 16);
        c->count = 1;
    } else {
        counted = false;
    }
    pthread_mutex_unlock(&a->addr_lock);
    return counted;
}

static void addr_remove(struct api_acceptor *a, const uint8_t key[16])
{
    pthread_mutex_lock(&a->addr_lock);
    struct addr_count *c = addr_find(a, key);
    if (c && --c->count == 0)
        *c = a->addrs[--a->addr_used];
    pthread_mutex_unlock(&a->addr_lock);
}

void api_acceptor_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    struct shard *s = cls;
    struct api_acceptor *a = s->owner;
    uint8_t key[16];
    const union MHD_ConnectionInfo *ci = NULL, *fdi = NULL;
    if (a->per_addr_limit) {
        ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        fdi = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    }
    bool has_key = ci && fdi && addr_key(ci->client_addr, key);

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->live, 1);
        if (has_key && addr_add(a, fdi->connect_fd, key))
            *socket_context = &counted_marker;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->live, 1);
        if (*socket_context == &counted_marker && has_key)
            addr_remove(a, key);
        *socket_context = NULL;
    }
}

void *api_acceptor_shard(struct api_acceptor *a, size_t i)
{
    return i < a->shard_count ? &a->shards[i] : NULL;
}

/* What one wake-up of the acceptor handed to each shard: those connections have not started
 * yet, so the shards' counts do not show them. */
struct burst {
    unsigned handed[API_ACCEPTOR_SHARDS_MAX];
};

/* The shard with the fewest connections, counting those handed to it in this burst. */
static size_t least_loaded(struct api_acceptor *a, const unsigned *handed)
{
    size_t best = a->next % a->shard_count;
    unsigned best_load = UINT_MAX;
    for (size_t i = 0; i < a->shard_count; i++) {
        size_t s = (a->next + i) % a->shard_count;
        unsigned load = atomic_load(&a->shards[s].live) + handed[s];
        if (load < best_load) {
            best = s;
            best_load = load;
        }
    }
    a->next++;
    return best;
}

static void hand_over(struct api_acceptor *a, int fd, const struct sockaddr *sa, socklen_t len,
                      struct burst *b)
{
    uint8_t key[16];
    bool counted = a->per_addr_limit && addr_key(sa, key);
    if (counted && !pending_add(a, fd, key)) {
        log_debug("refusing a connection: its address holds %u already", a->per_addr_limit);
        close(fd);
        return;
    }
    size_t s = least_loaded(a, b->handed);
    b->handed[s]++;
    /* MHD closes the socket when it cannot take it. */
    if (MHD_add_connection(a->daemons[s], fd, sa, len) != MHD_YES) {
        log_debug("a new connection was not taken: %s", strerror(errno));
        if (counted)
            pending_drop(a, fd);
    }
}

/* Waits for connections or the stop signal (or, when PAUSED, for the pause to end). False when
 * told to stop. */
static bool wait_for_work(struct api_acceptor *a, bool paused)
{
    struct pollfd p[2] = {{.fd = a->stop_fd, .events = POLLIN},
                          {.fd = a->listen_fd, .events = POLLIN}};
    int n = poll(p, paused ? 1 : 2, paused ? ACCEPT_PAUSE_MS : -1);
    if (n < 0 && errno != EINTR) {
        log_error("cannot wait for API connections: %s", strerror(errno));
        return false;
    }
    return !(n > 0 && (p[0].revents & POLLIN));
}

static void *accept_main(void *arg)
{
    pthread_setname_np(pthread_self(), "certd-accept"); /* for top -H, ps -L and the benchmarks */
    struct api_acceptor *a = arg;
    bool paused = false, warned = false;
    while (wait_for_work(a, paused)) {
        struct burst burst = {0};
        paused = false;
        for (int i = 0; i < ACCEPT_BURST; i++) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            int fd =
                accept4(a->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                warned = false;
                hand_over(a, fd, (struct sockaddr *)&ss, len, &burst);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of descriptors or memory, mostly: pause rather than spin. */
                if (!warned)
                    log_warning("cannot accept API connections: %s (pausing %d ms at a time)",
                                strerror(errno), ACCEPT_PAUSE_MS);
                warned = true;
                paused = true;
            }
            break;
        }
    }
    return NULL;
}

int api_acceptor_new(int listen_fd, size_t shards, unsigned per_addr_limit,
                     struct api_acceptor **out)
{
    *out = NULL;
    if (shards == 0 || shards > API_ACCEPTOR_SHARDS_MAX) {
        close(listen_fd);
        return -EINVAL;
    }
    struct api_acceptor *a = calloc(1, sizeof(*a));
    if (!a) {
        close(listen_fd);
        return -ENOMEM;
    }
    a->listen_fd = listen_fd;
    a->shard_count = shards;
    a->per_addr_limit = per_addr_limit;
    pthread_mutex_init(&a->addr_lock, NULL);
    for (size_t i = 0; i < shards; i++)
        a->shards[i].owner = a;
    a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (per_addr_limit)
        a->addrs = calloc(ADDR_SLOTS, sizeof(*a->addrs));
    if (a->stop_fd < 0 || (per_addr_limit && !a->addrs)) {
        int ret = a->stop_fd < 0 ? -errno : -ENOMEM;
        api_acceptor_free(a);
        return ret;
    }
    *out = a;
    return 0;
}

int api_acceptor_run(struct api_acceptor *a, struct MHD_Daemon *const *daemons)
{
    if (a->running)
        return -EALREADY;
    for (size_t i = 0; i < a->shard_count; i++)
        a->daemons[i] = daemons[i];
    int rc = pthread_create(&a->thread, NULL, accept_main, a);
    if (rc != 0)
        return -rc;
    a->running = true;
    return 0;
}

void api_acceptor_stop(struct api_acceptor *a)
{
    if (!a)
        return;
    if (a->running) {
        uint64_t one = 1;
        if (write(a->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_error("cannot stop the API acceptor: %s", strerror(errno));
        pthread_join(a->thread, NULL);
        a->running = false;
    }
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
        a->listen_fd = -1;
    }
}

void api_acceptor_free(struct api_acceptor *a)
{
    if (!a)
        return;
    api_acceptor_stop(a);
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    pthread_mutex_destroy(&a->addr_lock);
    free(a->addrs);
    free(a);
}
