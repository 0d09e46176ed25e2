/*
 * The tls-alpn-01 responder (RFC 8737): a TLS server that completes a handshake only when the
 * client offers ALPN "acme-tls/1" and names, by SNI, a name we published, and then presents the
 * self-signed validation certificate for that name (§3). No application data is ever exchanged:
 * after the handshake the connection is closed, as §3 allows.
 *
 * A fixed pool of threads each polls the listening socket and an eventfd; the one that accepts
 * a connection runs its handshake non-blocking against a deadline, still polling the eventfd,
 * so responders_stop is prompt however slow the clients are. The pool size is the limit on
 * concurrent handshakes: beyond it connections wait in the listen backlog.
 *
 * Certificates are made at add time and shared by reference count, so a remove while a
 * handshake is using one leaves it valid until that handshake ends.
 */
#include "acme/resp_internal.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/names.h"
#include "core/log.h"
#include "crypto/keys.h"
#include "crypto/tlsalpn.h"

#define TLSALPN_THREADS 8
#define TLSALPN_HANDSHAKE_TIMEOUT_MS 10000
/* Back-off when accept fails for lack of resources (EMFILE ...), instead of spinning. */
#define TLSALPN_ACCEPT_BACKOFF_MS 100
#define ACME_TLS_1 "acme-tls/1"

/* A published validation certificate. REFS counts the table's reference and one per handshake
 * using it; guarded by the table lock. */
struct tls_cert {
    unsigned refs;
    gnutls_pcert_st pcert;
    gnutls_privkey_t key;
};

struct resp_tlsalpn {
    int listen_fd;
    int wake_fd; /* eventfd: once written, readable for good, which tells every thread to stop */
    pthread_t threads[TLSALPN_THREADS];
    size_t nthreads;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;

    pthread_mutex_t lock;
    struct resp_map certs; /* normalised name -> struct tls_cert * */
};

/* Certificates one handshake may hold: GnuTLS can ask more than once (per candidate cipher
 * suite, again after a HelloRetryRequest), and every answer must stay valid until the session
 * is gone, since we cannot tell which one it kept. */
#define TLSALPN_CONN_MAX_CERTS 4

/* Per-connection state, reached from the certificate callback through the session pointer. */
struct tls_conn {
    struct resp_tlsalpn *t;
    struct tls_cert *certs[TLSALPN_CONN_MAX_CERTS]; /* each referenced until the session ends */
    size_t ncerts;
};

static void cert_free(struct tls_cert *c)
{
    if (!c)
        return;
    gnutls_pcert_deinit(&c->pcert);
    gnutls_privkey_deinit(c->key); /* GnuTLS zeroes the key parameters */
    free(c);
}

/* Drops one reference; call with T->lock held. */
static void cert_unref_locked(struct tls_cert *c)
{
    if (c && --c->refs == 0)
        cert_free(c);
}

/* resp_map_clear callback at stop, when no thread is left. */
static void cert_unref_at_stop(void *p)
{
    cert_unref_locked(p);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * GnuTLS asks for the server certificate once it has parsed the ClientHello extensions, SNI and
 * ALPN included. Refusing here (-1) fails the handshake, which is what RFC 8737 §3 wants for a
 * client without "acme-tls/1" (GNUTLS_ALPN_MANDATORY only refuses a client that offers other
 * protocols, not one that offers none) and for a name we have no certificate for.
 */
static int select_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length,
                       gnutls_privkey_t *privkey)
{
    struct tls_conn *conn = gnutls_session_get_ptr(session);
    gnutls_datum_t proto;
    char name[NAME_BUF_SIZE + 1];
    size_t len = sizeof(name);
    unsigned type;

    if (gnutls_alpn_get_selected_protocol(session, &proto) < 0 ||
        proto.size != strlen(ACME_TLS_1) || memcmp(proto.data, ACME_TLS_1, proto.size) != 0) {
        log_debug("tls-alpn-01: handshake without ALPN %s refused", ACME_TLS_1);
        return -1;
    }
    /* A NUL inside the name would cut the lookup key short: refuse it. */
    if (gnutls_server_name_get(session, name, &len, &type, 0) < 0 || type != GNUTLS_NAME_DNS ||
        len == 0 || strlen(name) != len) {
        log_debug("tls-alpn-01: handshake without a usable SNI refused");
        return -1;
    }
    /* Published names are normalised: lower case, no trailing dot. */
    if (name[len - 1] == '.')
        name[--len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    }

    pthread_mutex_lock(&conn->t->lock);
    struct tls_cert *c = resp_map_get(&conn->t->certs, name);
    bool held = false;
    for (size_t i = 0; c && i < conn->ncerts; i++)
        held |= conn->certs[i] == c;
    if (c && !held) {
        if (conn->ncerts < TLSALPN_CONN_MAX_CERTS) {
            c->refs++;
            conn->certs[conn->ncerts++] = c;
        } else {
            c = NULL;
        }
    }
    pthread_mutex_unlock(&conn->t->lock);
    if (!c) {
        log_debug("tls-alpn-01: no certificate published for the SNI asked, handshake refused");
        return -1;
    }
    *pcert = &c->pcert;
    *pcert_length = 1;
    *privkey = c->key;
    return 0;
}

/* Waits until FD is ready for EVENTS, the deadline passes (-ETIMEDOUT) or stop is asked
 * (-ECANCELED). */
static int wait_ready(struct resp_tlsalpn *t, int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = t->wake_fd, .events = POLLIN}};
        int n = poll(p, 2, (int)left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents)
            return -ECANCELED;
        if (p[0].revents)
            return 0;
    }
}

/* One connection: the handshake and nothing else. FD is non-blocking; the caller closes it. */
static void serve(struct resp_tlsalpn *t, int fd)
{
    static const gnutls_datum_t alpn = {(unsigned char *)ACME_TLS_1, sizeof(ACME_TLS_1) - 1};
    struct tls_conn conn = {.t = t};
    gnutls_session_t session = NULL;
    int64_t deadline = now_ms() + TLSALPN_HANDSHAKE_TIMEOUT_MS;
    int ret;

    /* No tickets: a resumed session would skip the certificate, and there is nothing to resume.
     * NO_SIGNAL: a peer that resets the connection must not raise SIGPIPE in the daemon. */
    ret = gnutls_init(&session,
                      GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS);
    if (ret < 0) {
        session = NULL;
        goto out;
    }
    if ((ret = gnutls_priority_set(session, t->prio)) < 0 ||
        (ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0 ||
        (ret = gnutls_alpn_set_protocols(session, &alpn, 1, GNUTLS_ALPN_MANDATORY)) < 0)
        goto out;
    gnutls_session_set_ptr(session, &conn);
    gnutls_transport_set_int(session, fd);
    /* Our own deadline (below) covers the whole handshake, including the waits. */
    gnutls_handshake_set_timeout(session, GNUTLS_INDEFINITE_TIMEOUT);

    for (;;) {
        ret = gnutls_handshake(session);
        if (ret == GNUTLS_E_SUCCESS)
            break;
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
            short ev = gnutls_record_get_direction(session) ? POLLOUT : POLLIN;
            int w = wait_ready(t, fd, ev, deadline);
            if (w < 0) {
                log_debug("tls-alpn-01: handshake abandoned: %s", strerror(-w));
                goto out;
            }
            continue;
        }
        if (gnutls_error_is_fatal(ret)) {
            log_debug("tls-alpn-01: handshake failed: %s", gnutls_strerror(ret));
            goto out;
        }
    }
    log_debug("tls-alpn-01: validation handshake completed");
    /* Best effort close_notify; the peer has what it came for. */
    gnutls_bye(session, GNUTLS_SHUT_WR);
out:
    gnutls_deinit(session);
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < conn.ncerts; i++)
        cert_unref_locked(conn.certs[i]);
    pthread_mutex_unlock(&t->lock);
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "certd-alpn"); /* for top -H, ps -L and the benchmarks */
    struct resp_tlsalpn *t = arg;

    for (;;) {
        struct pollfd p[2] = {{.fd = t->listen_fd, .events = POLLIN},
                              {.fd = t->wake_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("tls-alpn-01: poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        /* Every idle thread wakes for a connection; the others get EAGAIN and go back. */
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            log_debug("tls-alpn-01: accept: %s", strerror(e));
            struct pollfd w = {.fd = t->wake_fd, .events = POLLIN};
            if (poll(&w, 1, TLSALPN_ACCEPT_BACKOFF_MS) > 0)
                break;
            continue;
        }
        serve(t, fd);
        close(fd);
    }
    return NULL;
}

int resp_tlsalpn_start(int listen_fd, struct resp_tlsalpn **out, char *err, size_t errsz)
{
    struct resp_tlsalpn *t = calloc(1, sizeof(*t));
    int rc, ret;

    if (!t) {
        close(listen_fd);
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    t->listen_fd = listen_fd;
    t->wake_fd = -1;
    t->certs.max = RESPONDERS_MAX_TLSALPN_NAMES;
    pthread_mutex_init(&t->lock, NULL);

    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->wake_fd < 0) {
        rc = -errno;
        snprintf(err, errsz, "tls-alpn-01: eventfd: %s", strerror(errno));
        goto out;
    }
    if ((ret = gnutls_certificate_allocate_credentials(&t->cred)) < 0) {
        t->cred = NULL;
        rc = -ENOMEM;
        snprintf(err, errsz, "tls-alpn-01: %s", gnutls_strerror(ret));
        goto out;
    }
    gnutls_certificate_set_retrieve_function2(t->cred, select_cert);
    /* RFC 8737 §4: TLS 1.2 or later. */
    const char *err_pos = NULL;
    if ((ret = gnutls_priority_init(&t->prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
                                    &err_pos)) < 0) {
        t->prio = NULL;
        rc = -EIO;
        snprintf(err, errsz, "tls-alpn-01: priority string: %s", gnutls_strerror(ret));
        goto out;
    }
    for (size_t i = 0; i < TLSALPN_THREADS; i++) {
        int e = pthread_create(&t->threads[i], NULL, worker, t);
        if (e) {
            rc = -e;
            snprintf(err, errsz, "tls-alpn-01: cannot start a thread: %s", strerror(e));
            goto out;
        }
        t->nthreads++;
    }
    *out = t;
    t = NULL;
    rc = 0;
out:
    resp_tlsalpn_stop(t);
    return rc;
}

void resp_tlsalpn_stop(struct resp_tlsalpn *t)
{
    if (!t)
        return;
    if (t->nthreads) {
        uint64_t one = 1;
        /* Cannot fail short of a counter overflow; if it did, joining would hang, so say so. */
        if (write(t->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_error("tls-alpn-01: cannot wake the responder threads: %s", strerror(errno));
        for (size_t i = 0; i < t->nthreads; i++)
            pthread_join(t->threads[i], NULL);
    }
    close(t->listen_fd);
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    resp_map_clear(&t->certs, cert_unref_at_stop);
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    if (t->prio)
        gnutls_priority_deinit(t->prio);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Makes the certificate and key for NAME and KEY_AUTH and loads them for GnuTLS. */
static int cert_make(const char *name, const char *key_auth, struct tls_cert **out)
{
    uint8_t digest[32];
    char *cert_pem = NULL, *key_pem = NULL;
    struct tls_cert *c = NULL;
    int rc, ret;

    /* RFC 8737 §3: the acmeIdentifier holds SHA-256 of the key authorisation. */
    if ((ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), digest)) < 0) {
        rc = -EIO;
        goto out;
    }
    rc = tlsalpn_cert_create(name, digest, &cert_pem, &key_pem);
    if (rc < 0)
        goto out;
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto out;
    }
    gnutls_datum_t cert_d = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t key_d = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    if ((ret = gnutls_pcert_import_x509_raw(&c->pcert, &cert_d, GNUTLS_X509_FMT_PEM, 0)) < 0) {
        free(c);
        c = NULL;
        rc = -EIO;
        goto out;
    }
    if ((ret = gnutls_privkey_init(&c->key)) < 0 ||
        (ret = gnutls_privkey_import_x509_raw(c->key, &key_d, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        rc = -EIO;
        goto out;
    }
    c->refs = 1;
    *out = c;
    c = NULL;
    rc = 0;
out:
    if (ret < 0)
        log_error("tls-alpn-01: cannot load the validation certificate: %s", gnutls_strerror(ret));
    cert_free(c);
    free(cert_pem);
    keys_pem_free(key_pem);
    gnutls_memset(digest, 0, sizeof(digest));
    return rc;
}

int resp_tlsalpn_add(struct resp_tlsalpn *t, const char *name, const char *key_auth)
{
    char norm[NAME_BUF_SIZE], nerr[NAME_ERR_SIZE];
    struct tls_cert *c = NULL;
    void *old = NULL;
    int rc;

    if (!resp_key_auth_valid(key_auth) || name_normalize(name, false, norm, nerr) < 0)
        return -EINVAL;
    rc = cert_make(norm, key_auth, &c);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&t->lock);
    rc = resp_map_put(&t->certs, norm, c, &old);
    if (rc < 0)
        cert_unref_locked(c);
    cert_unref_locked(old);
    pthread_mutex_unlock(&t->lock);
    if (rc == 0)
        log_debug("tls-alpn-01: serving the validation certificate for %s", norm);
    return rc;
}

void resp_tlsalpn_remove(struct resp_tlsalpn *t, const char *name)
{
    char norm[NAME_BUF_SIZE], nerr[NAME_ERR_SIZE];

    if (name_normalize(name, false, norm, nerr) < 0)
        return;
    pthread_mutex_lock(&t->lock);
    cert_unref_locked(resp_map_take(&t->certs, norm));
    pthread_mutex_unlock(&t->lock);
}
