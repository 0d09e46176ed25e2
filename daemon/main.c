/*
 * certd: the certificate management daemon.
 *
 * Start-up order (acquire, then shrink):
 *   1. read and validate the configuration (nothing touched yet, so --check-config is safe);
 *   2. take the exclusive lock in state_dir: a second certd on the same state stops here and
 *      touches nothing, not even the live socket;
 *   3. open the database and apply migrations;
 *   4. bind the API socket (umask tightened before bind) and the challenge responders'
 *      ports (80 and 443 need root or CAP_NET_BIND_SERVICE);
 *   5. if [daemon] user is set and we are root, hand our files to that user and drop to it;
 *   6. start the scheduler (it first cleans up after a crash and resumes unfinished orders),
 *      then serve the API; tell systemd READY=1.
 * Shutdown runs the other way: the API stops taking requests, the scheduler interrupts waiting
 * orders (they resume at the next start), the responders close.
 * Signals are taken synchronously by the main thread (sigwaitinfo): SIGTERM/SIGINT stop,
 * SIGHUP reloads the configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "acme/responders.h"
#include "api/api.h"
#include "api/events_bus.h"
#include "api/index.h"
#include "core/confhold.h"
#include "core/config.h"
#include "core/log.h"
#include "sched/scheduler.h"
#include "store/store.h"

#define LOCK_FILE "certd.lock"
#define DB_FILE "certd.db"

struct daemon_state {
    struct config_holder *config;
    char *state_dir;
    char *socket_path;
    int lock_fd;
    struct store *store;
    struct events_bus *events;      /* the store's event hook, fanned out */
    struct delivery_index *index;
    int listen_fd;
    struct responders *responders;
    struct scheduler *scheduler;
    struct api_server *api;
    struct api_tls_listener *https_listener; /* [api.https], bound at step 4 */
    struct api_server *api_https;
    struct api_context api_ctx;
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: certd [--config FILE] [--check-config] [--version] [--help]\n"
                 "\n"
                 "  -c, --config FILE   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
                 "      --check-config  validate the configuration and exit\n"
                 "  -V, --version       print the version and exit\n"
                 "  -h, --help          show this help\n");
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int ensure_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* Step 2. The lock is an open file description lock on state_dir/certd.lock, released by the
 * kernel when we exit however we exit; the file holds our pid for the message a second daemon
 * prints. */
static int take_state_lock(struct daemon_state *d)
{
    char *path = path_join(d->state_dir, LOCK_FILE);
    if (!path)
        return -ENOMEM;
    int rc = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        log_error("cannot open lock file %s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        if (rc == -EWOULDBLOCK)
            log_error("another certd%s%s%s is already running on %s; exiting without touching it",
                      pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", d->state_dir);
        else
            log_error("cannot lock %s: %s", path, strerror(-rc));
        close(fd);
        goto out;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        log_warning("cannot write pid to %s: %s", path, strerror(errno));
    d->lock_fd = fd;
out:
    free(path);
    return rc;
}

/* Step 5. Everything the daemon keeps writing must belong to the user it becomes. */
static int drop_privileges(struct daemon_state *d, const char *user)
{
    char buf[8192];
    struct passwd pw, *res = NULL;
    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res) {
        log_error("[daemon] user %s: no such user", user);
        return -ENOENT;
    }
    static const char *const files[] = {"", LOCK_FILE, DB_FILE, DB_FILE "-wal", DB_FILE "-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = path_join(d->state_dir, files[i]);
        if (!p)
            return -ENOMEM;
        if (chown(p, pw.pw_uid, pw.pw_gid) < 0 && errno != ENOENT) {
            log_error("chown %s to %s: %s", p, user, strerror(errno));
            free(p);
            return -EPERM;
        }
        free(p);
    }
    /* The owner may keep the socket's group (socket_group) but must be able to remove it. */
    if (chown(d->socket_path, pw.pw_uid, (gid_t)-1) < 0)
        log_warning("chown %s to %s: %s", d->socket_path, user, strerror(errno));
    if (initgroups(user, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 || setuid(pw.pw_uid) < 0) {
        log_error("cannot drop privileges to %s: %s", user, strerror(errno));
        return -EPERM;
    }
    if (setuid(0) == 0) {
        log_error("privilege drop to %s did not stick", user);
        return -EPERM;
    }
    log_info("running as user %s (uid %lu)", user, (unsigned long)pw.pw_uid);
    return 0;
}

static void record_event(struct daemon_state *d, const char *type, const char *detail_json)
{
    struct store_event_in ev = {.type = type, .actor = "certd", .detail_json = detail_json};
    store_event_add(d->store, &ev, NULL);
}

static bool same_str(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* SIGHUP: the new file must validate in full, or the running configuration stays. Paths and the
 * user are bound at start and need a restart to change. */
static void reload_config(struct daemon_state *d, const char *path)
{
    char err[1024];
    struct config *cfg = NULL;
    sd_notify(0, "RELOADING=1");
    if (config_load(path, &cfg, err, sizeof(err)) < 0) {
        log_error("reload refused, keeping the running configuration: %s", err);
        sd_notify(0, "READY=1");
        return;
    }
    const struct config *cur = config_holder_get(d->config);
    if (strcmp(cur->daemon.state_dir, cfg->daemon.state_dir) != 0 ||
        strcmp(cur->daemon.socket, cfg->daemon.socket) != 0 ||
        cur->daemon.socket_mode != cfg->daemon.socket_mode ||
        cur->daemon.api_threads != cfg->daemon.api_threads ||
        (cur->daemon.user ? !cfg->daemon.user || strcmp(cur->daemon.user, cfg->daemon.user)
                          : cfg->daemon.user != NULL))
        log_warning("state_dir, socket, socket_mode, api_threads and user take effect only after "
                    "a restart");
    if (!same_str(cur->https.listen, cfg->https.listen) ||
        !same_str(cur->https.cert, cfg->https.cert) || !same_str(cur->https.key, cfg->https.key) ||
        !same_str(cur->https.client_ca, cfg->https.client_ca))
        log_warning("[api.https] takes effect only after a restart");
    config_holder_put(d->config, cur);
    log_set_level(cfg->daemon.log_level);
    config_holder_replace(d->config, cfg);
    record_event(d, "config.reloaded", NULL);
    log_notice("configuration reloaded from %s", path);
    sd_notify(0, "READY=1");
}

static int serve(struct daemon_state *d, const char *config_path, const sigset_t *sigs)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "{\"version\":\"%s\",\"pid\":%ld}", CERTD_VERSION,
             (long)getpid());
    record_event(d, "daemon.started", detail);
    log_notice("certd %s ready; API on %s", CERTD_VERSION, d->socket_path);
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s\nMAINPID=%lu", d->socket_path,
               (unsigned long)getpid());

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(sigs, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            log_error("sigwaitinfo: %s", strerror(errno));
            return -errno;
        }
        if (sig == SIGHUP) {
            reload_config(d, config_path);
            continue;
        }
        log_notice("received %s, shutting down", strsignal(sig));
        return 0;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = CONFIG_DEFAULT_PATH;
    bool check_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'V':
            printf("certd %s\n", CERTD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "certd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* 1. configuration */
    char err[1024];
    struct config *cfg = NULL;
    if (config_load(config_path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "certd: %s\n", err);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration OK\n", config_path);
        config_free(cfg);
        return 0;
    }
    log_set_level(cfg->daemon.log_level);

    /* Signals are received only by sigwaitinfo in the main thread; every thread started later
     * inherits this mask. SIGPIPE is ignored so a vanished client is an EPIPE, not a death. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Before any thread exists: libcurl's global state is not thread-safe to set up. */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct daemon_state d = {.lock_fd = -1, .listen_fd = -1};
    int exit_code = 1;
    d.state_dir = strdup(cfg->daemon.state_dir);
    d.socket_path = strdup(cfg->daemon.socket);
    char *user = cfg->daemon.user ? strdup(cfg->daemon.user) : NULL;
    d.config = config_holder_new(cfg); /* owns cfg from here */
    if (!d.config || !d.state_dir || !d.socket_path)
        goto out;

    /* 2. lock */
    if (ensure_dir(d.state_dir, 0700) < 0) {
        log_error("cannot create state_dir %s: %s", d.state_dir, strerror(errno));
        goto out;
    }
    if (take_state_lock(&d) < 0)
        goto out;

    /* 3. database */
    char *db_path = path_join(d.state_dir, DB_FILE);
    if (!db_path)
        goto out;
    int rc = store_open(db_path, &d.store, err, sizeof(err));
    free(db_path);
    if (rc < 0) {
        log_error("%s", err);
        goto out;
    }
    log_info("database schema version %d", store_schema_version(d.store));
    {
        /* Before anything commits: readers of the log (delivery index, change feed) are woken
         * through the bus from here on. */
        int64_t last_event = 0;
        if (store_event_last_id(d.store, &last_event) < 0 ||
            events_bus_new(last_event, &d.events) < 0)
            goto out;
        store_set_event_hook(d.store, events_bus_hook, d.events);
    }

    /* 4. socket */
    {
        const struct config *c = config_holder_get(d.config);
        char *dir = strdup(d.socket_path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash && slash != dir) {
            *slash = '\0';
            ensure_dir(dir, 0755);
        }
        free(dir);
        d.listen_fd =
            api_socket_bind(d.socket_path, c->daemon.socket_mode, c->daemon.socket_group, err,
                            sizeof(err));
        config_holder_put(d.config, c);
        if (d.listen_fd < 0) {
            log_error("%s", err);
            goto out;
        }
        /* The HTTPS listener's port and key file may need root, as the socket's directory does. */
        c = config_holder_get(d.config);
        rc = api_tls_listener_open(c, &d.https_listener, err, sizeof(err));
        config_holder_put(d.config, c);
        if (rc < 0) {
            log_error("%s", err);
            goto out_unlink;
        }
    }

    {
        const struct config *c = config_holder_get(d.config);
        rc = responders_start(c, &d.responders, err, sizeof(err));
        config_holder_put(d.config, c);
        if (rc < 0) {
            log_error("%s", err);
            goto out_unlink;
        }
    }

    /* 5. privileges */
    if (user && geteuid() == 0 && drop_privileges(&d, user) < 0)
        goto out_unlink;

    /* 6. serve */
    if (index_new(&d.index) < 0 || index_start(d.index, d.store, d.events) < 0) {
        log_error("cannot load the delivery index");
        goto out_unlink;
    }
    if (scheduler_start(d.store, d.config, d.responders, &d.scheduler) < 0)
        goto out_unlink;
    d.api_ctx = (struct api_context){
        .store = d.store,
        .config = d.config,
        .scheduler = d.scheduler,
        .responders = d.responders,
        .events = d.events,
        .index = d.index,
        .started_at = clock_now(),
        .daemon_uid = geteuid(),
    };
    rc = api_server_start(d.listen_fd, &d.api_ctx, &d.api);
    d.listen_fd = -1; /* the server owns it now, even on failure */
    if (rc < 0)
        goto out_unlink;
    if (d.https_listener) {
        rc = api_server_start_https(d.https_listener, &d.api_ctx, &d.api_https);
        d.https_listener = NULL; /* likewise */
        if (rc < 0) {
            api_server_stop(d.api);
            goto out_unlink;
        }
    }

    if (serve(&d, config_path, &sigs) == 0)
        exit_code = 0;
    sd_notify(0, "STOPPING=1");
    api_server_stop(d.api_https);
    api_server_stop(d.api);
    scheduler_stop(d.scheduler);
    d.scheduler = NULL;
    record_event(&d, "daemon.stopped", NULL);
    log_notice("certd stopped");

out_unlink:
    unlink(d.socket_path);
out:
    scheduler_stop(d.scheduler);
    responders_stop(d.responders);
    api_tls_listener_free(d.https_listener);
    if (d.listen_fd >= 0)
        close(d.listen_fd);
    events_bus_stop(d.events);
    index_free(d.index);
    store_close(d.store);
    events_bus_free(d.events); /* after the store: its hook points here until it is closed */
    if (d.lock_fd >= 0)
        close(d.lock_fd);
    config_holder_free(d.config);
    free(user);
    free(d.state_dir);
    free(d.socket_path);
    curl_global_cleanup();
    return exit_code;
}
