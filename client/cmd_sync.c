/* certctl sync: writes each domain's certificate and key as files for proxies that read files
 * (nginx, HAProxy), only when they changed, runs a reload command once per batch, and with
 * --watch follows certd's change feed (GET /v1/events long-poll) to do it again on every change.
 * Layout and state are documented in docs/cli.md ("sync") and docs/deliver.md. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "args.h"
#include "certctl.h"
#include "common/atomicfile.h"
#include "common/names.h"
#include "http.h"

#define SYNC_STATE_FILE ".sync-state"
#define SYNC_CRTLIST_FILE "haproxy.crt-list"
#define SYNC_STATE_MAX (64u * 1024 * 1024) /* 100,000 domains' etags fit easily */
#define SYNC_WAIT_S 60                     /* long-poll length */
#define SYNC_BACKOFF_MIN_S 1
#define SYNC_BACKOFF_MAX_S 30
#define SYNC_RELOAD_ARGS_MAX 64
#define SYNC_RELOAD_MAX 4096
#define SYNC_HA_REPLY_MAX (16u * 1024 * 1024) /* `show ssl cert` of 100,000 files */
#define SYNC_HA_TIMEOUT_MS 10000

/* The files of one domain's folder; the ones holding the key are 0600 from creation. */
static const char *const domain_files[] = {"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem",
                                           "combined.pem"};
#define N_DOMAIN_FILES (sizeof(domain_files) / sizeof(domain_files[0]))

struct sync_run {
    struct certctl *ctx;
    char out_dir[PATH_MAX]; /* absolute: the crt-list names files by this path */
    char **only;            /* --domains, normalised; NULL for every domain the caller sees */
    size_t n_only;
    char *reload_buf; /* --reload split in place; RELOAD_ARGV points into it */
    char *reload_argv[SYNC_RELOAD_ARGS_MAX + 1];
    bool have_reload;
    const char *ha_socket; /* --haproxy-socket: HAProxy's stats socket (admin level) */
    json_t *ha_dirty;      /* domains written since HAProxy last took them: name -> true */
    json_t *ha_gone;       /* domains removed since: name -> their combined.pem path */
    bool watch;
    json_t *state; /* {"version":1,"last_event_id":N|null,"domains":{NAME:{...}}} */
    bool changed;  /* files were written or removed since the last reload */
    int failures;  /* domains that could not be synced in this batch */
};

static volatile int sync_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    sync_stop = 1;
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* Joins OUT_DIR, A and (when not NULL) B with '/' into BUF. Returns 0 or -ENAMETOOLONG. */
static int join_path(char *buf, size_t sz, const char *dir, const char *a, const char *b)
{
    int n = b ? snprintf(buf, sz, "%s/%s/%s", dir, a, b) : snprintf(buf, sz, "%s/%s", dir, a);
    return n < 0 || (size_t)n >= sz ? -ENAMETOOLONG : 0;
}

/*
 * The folder of domain NAME: NAME itself, a wildcard's "*." written "_." (a '*' in a path is an
 * invitation to glob accidents). NAME comes from the server, so it must be a normalised DNS name:
 * that rules out '/', ".." and everything else that could leave OUT_DIR. Returns 0 or -EINVAL.
 */
static int domain_dirname(const char *name, char out[NAME_BUF_SIZE])
{
    char norm[NAME_BUF_SIZE], why[NAME_ERR_SIZE];
    if (name_normalize(name, true, norm, why) < 0 || strcmp(norm, name) != 0)
        return -EINVAL;
    if (name_is_wildcard(norm))
        norm[0] = '_';
    memcpy(out, norm, NAME_BUF_SIZE);
    return 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sleeps SECONDS, or less when a stop signal arrives. */
static void sleep_interruptible(int seconds)
{
    for (int i = 0; i < seconds * 10 && !sync_stop; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/*
 * Splits the --reload command into words, in place: words are separated by blanks; '...' keeps
 * everything literally, "..." too except that \" and \\ stand for " and \, and a backslash
 * outside quotes makes the next character literal. No shell: no variables, globs, pipes or
 * redirections (write "sh -c '...'" for those). Returns 0, or -EINVAL for an unclosed quote, a
 * trailing backslash, no word at all or too many words.
 */
static int split_command(char *s, char **argv, size_t max)
{
    size_t n = 0;
    char *r = s, *w = s;

    for (;;) {
        while (*r == ' ' || *r == '\t' || *r == '\n')
            r++;
        if (!*r)
            break;
        if (n == max)
            return -EINVAL;
        argv[n++] = w;
        while (*r && *r != ' ' && *r != '\t' && *r != '\n') {
            if (*r == '\'') {
                char *end = strchr(r + 1, '\'');
                if (!end)
                    return -EINVAL;
                size_t len = (size_t)(end - r - 1);
                memmove(w, r + 1, len);
                w += len;
                r = end + 1;
            } else if (*r == '"') {
                r++;
                while (*r && *r != '"') {
                    if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                        r++;
                    *w++ = *r++;
                }
                if (*r != '"')
                    return -EINVAL;
                r++;
            } else if (*r == '\\') {
                if (!r[1])
                    return -EINVAL;
                *w++ = r[1];
                r += 2;
            } else {
                *w++ = *r++;
            }
        }
        /* R is at a blank or the end; W <= R, so ending the word cannot clobber unread text
         * except the blank R points at, which is consumed here. */
        bool end = !*r;
        *w++ = '\0';
        if (end)
            break;
        r++;
    }
    argv[n] = NULL;
    return n ? 0 : -EINVAL;
}

/* Runs the reload command and waits for it. Returns 0 when it exited 0, else -1 (reported). */
static int run_reload(struct sync_run *run)
{
    if (!run->have_reload)
        return 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        errmsg("sync: cannot run the reload command: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(run->reload_argv[0], run->reload_argv);
        fprintf(stderr, "certctl: sync: cannot run %s: %s\n", run->reload_argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            errmsg("sync: waiting for the reload command: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("reloaded: %s\n", run->reload_argv[0]);
        return 0;
    }
    if (WIFEXITED(status))
        errmsg("sync: reload command %s exited with status %d", run->reload_argv[0],
               WEXITSTATUS(status));
    else
        errmsg("sync: reload command %s was killed by signal %d", run->reload_argv[0],
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

/* ---- state ------------------------------------------------------------------------------- */

static json_t *state_domains(struct sync_run *run)
{
    return json_object_get(run->state, "domains");
}

/* Loads DIR/.sync-state; a missing or unreadable one starts afresh (everything is compared
 * again, which only costs a rewrite). Returns 0 or -ENOMEM. */
static int state_load(struct sync_run *run)
{
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *st = NULL;

    if (join_path(path, sizeof(path), run->out_dir, SYNC_STATE_FILE, NULL) == 0 &&
        file_exists(path)) {
        st = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!st || !json_is_object(st) || !json_is_object(json_object_get(st, "domains")) ||
            json_integer_value(json_object_get(st, "version")) != 1) {
            errmsg("sync: ignoring %s: not a sync state file; syncing everything afresh", path);
            json_decref(st);
            st = NULL;
        }
    }
    if (!st) {
        st = json_pack("{s:i, s:n, s:{}}", "version", 1, "last_event_id", "domains");
        if (!st)
            return -ENOMEM;
    }
    run->state = st;
    return 0;
}

static int state_save(struct sync_run *run)
{
    char path[PATH_MAX];
    int ret = join_path(path, sizeof(path), run->out_dir, SYNC_STATE_FILE, NULL);
    if (ret < 0)
        return ret;
    char *text = json_dumps(run->state, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    /* Unchanged state is not rewritten: a sync that found nothing to do touches no file. */
    FILE *f = fopen(path, "re");
    if (f) {
        char *old = calloc(1, len + 2);
        size_t got = old ? fread(old, 1, len + 1, f) : 0;
        fclose(f);
        bool same = old && got == len && memcmp(old, text, len) == 0;
        free(old);
        if (same) {
            free(text);
            return 0;
        }
    }
    ret = atomic_write_file(path, text, len, 0600);
    free(text);
    if (ret < 0)
        errmsg("sync: cannot write %s: %s", path, strerror(-ret));
    return ret;
}

static bool state_has_cursor(struct sync_run *run)
{
    return json_is_integer(json_object_get(run->state, "last_event_id"));
}

static int64_t state_cursor(struct sync_run *run)
{
    return (int64_t)json_integer_value(json_object_get(run->state, "last_event_id"));
}

static void state_set_cursor(struct sync_run *run, int64_t id)
{
    json_object_set_new(run->state, "last_event_id", json_integer((json_int_t)id));
}

/* True when NAME (normalised) is one the run manages. */
static bool selected(const struct sync_run *run, const char *name)
{
    if (!run->only)
        return true;
    for (size_t i = 0; i < run->n_only; i++) {
        if (strcmp(run->only[i], name) == 0)
            return true;
    }
    return false;
}

/* ---- writing one domain ------------------------------------------------------------------ */

/* Appends LEN bytes of S to the malloc'd *BUF of *LEN bytes (kept NUL-terminated). */
static int buf_append(char **buf, size_t *len, const char *s, size_t n)
{
    char *p = malloc(*len + n + 1);
    if (!p)
        return -ENOMEM;
    if (*len)
        memcpy(p, *buf, *len);
    memcpy(p + *len, s, n);
    p[*len + n] = '\0';
    if (*buf) {
        explicit_bzero(*buf, *len); /* the combined file holds the key */
        free(*buf);
    }
    *buf = p;
    *len += n;
    return 0;
}

static void buf_free(char *buf, size_t len)
{
    if (!buf)
        return;
    explicit_bzero(buf, len);
    free(buf);
}

/*
 * Splits FULLCHAIN (PEM, leaf first) with GnuTLS into the leaf's PEM (*LEAF) and the rest
 * (*CHAIN, possibly empty), both malloc'd and re-encoded by GnuTLS, so that fullchain.pem is
 * exactly cert.pem followed by chain.pem. Returns 0, -EBADMSG or -ENOMEM.
 */
static int split_chain(const char *fullchain, char **leaf, size_t *leaf_len, char **chain,
                       size_t *chain_len)
{
    gnutls_x509_crt_t *crts = NULL;
    unsigned int n = 0;
    gnutls_datum_t in = {(unsigned char *)fullchain, (unsigned int)strlen(fullchain)};
    int ret = -EBADMSG;

    *leaf = *chain = NULL;
    *leaf_len = *chain_len = 0;
    if (gnutls_x509_crt_list_import2(&crts, &n, &in, GNUTLS_X509_FMT_PEM, 0) < 0 || n == 0)
        return -EBADMSG;
    for (unsigned int i = 0; i < n; i++) {
        gnutls_datum_t pem = {NULL, 0};
        if (gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_PEM, &pem) < 0)
            goto out;
        int r = i == 0 ? buf_append(leaf, leaf_len, (char *)pem.data, pem.size)
                       : buf_append(chain, chain_len, (char *)pem.data, pem.size);
        gnutls_free(pem.data);
        if (r < 0) {
            ret = r;
            goto out;
        }
    }
    if (!*chain && buf_append(chain, chain_len, "", 0) < 0) {
        ret = -ENOMEM;
        goto out;
    }
    ret = 0;
out:
    for (unsigned int i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (ret < 0) {
        buf_free(*leaf, *leaf_len);
        buf_free(*chain, *chain_len);
        *leaf = *chain = NULL;
    }
    return ret;
}

/* Writes DIR/SUB/FILE atomically with MODE. Reports failures. */
static int write_one(struct sync_run *run, const char *sub, const char *file, const char *data,
                     size_t len, mode_t mode)
{
    char path[PATH_MAX];
    int ret = join_path(path, sizeof(path), run->out_dir, sub, file);
    if (ret == 0)
        ret = atomic_write_file(path, data, len, mode);
    if (ret < 0)
        errmsg("sync: cannot write %s/%s/%s: %s", run->out_dir, sub, file, strerror(-ret));
    return ret;
}

/* Writes the five files of BUNDLE (a /bundle answer) into its folder. Returns 0 or -errno. */
static int write_bundle(struct sync_run *run, const char *dirname, const json_t *bundle)
{
    const char *fullchain = json_string_value(json_object_get(bundle, "fullchain"));
    const char *key = json_string_value(json_object_get(bundle, "private_key"));
    char *leaf = NULL, *chain = NULL, *full = NULL, *comb = NULL, *keybuf = NULL;
    size_t leaf_len = 0, chain_len = 0, full_len = 0, comb_len = 0, key_len = 0;
    char path[PATH_MAX];
    int ret;

    if (!fullchain || !key || !strstr(key, "-----BEGIN ")) {
        errmsg("sync: certd's bundle for %s lacks its chain or key", dirname);
        return -EBADMSG;
    }
    ret = split_chain(fullchain, &leaf, &leaf_len, &chain, &chain_len);
    if (ret < 0) {
        errmsg("sync: certd's chain for %s does not parse", dirname);
        goto out;
    }
    ret = -ENOMEM;
    /* A key without a final newline would run into nothing here, but into the next PEM block in
     * combined.pem if the order ever changed: normalise it once. */
    if (buf_append(&keybuf, &key_len, key, strlen(key)) < 0)
        goto out;
    if (key_len && keybuf[key_len - 1] != '\n' && buf_append(&keybuf, &key_len, "\n", 1) < 0)
        goto out;
    if (buf_append(&full, &full_len, leaf, leaf_len) < 0 ||
        buf_append(&full, &full_len, chain, chain_len) < 0 ||
        buf_append(&comb, &comb_len, full, full_len) < 0 ||
        buf_append(&comb, &comb_len, keybuf, key_len) < 0)
        goto out;

    ret = join_path(path, sizeof(path), run->out_dir, dirname, NULL);
    if (ret < 0)
        goto out;
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        ret = -errno;
        errmsg("sync: cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    /* The key first and the certificate last: a reader that sees the new certificate sees the
     * new key too (a proxy reloads after the batch anyway). */
    if ((ret = write_one(run, dirname, "privkey.pem", keybuf, key_len, 0600)) < 0 ||
        (ret = write_one(run, dirname, "combined.pem", comb, comb_len, 0600)) < 0 ||
        (ret = write_one(run, dirname, "chain.pem", chain, chain_len, 0644)) < 0 ||
        (ret = write_one(run, dirname, "fullchain.pem", full, full_len, 0644)) < 0 ||
        (ret = write_one(run, dirname, "cert.pem", leaf, leaf_len, 0644)) < 0)
        goto out;
    ret = 0;
out:
    buf_free(leaf, leaf_len);
    buf_free(chain, chain_len);
    buf_free(full, full_len);
    buf_free(comb, comb_len);
    buf_free(keybuf, key_len);
    return ret;
}

/* Deletes domain NAME's folder and forgets it. Returns 0 or -errno (reported). */
static int remove_domain(struct sync_run *run, const char *name)
{
    char dirname[NAME_BUF_SIZE], path[PATH_MAX];
    int ret = 0;

    if (domain_dirname(name, dirname) == 0) {
        json_object_del(run->ha_dirty, name);
        if (run->ha_socket &&
            join_path(path, sizeof(path), run->out_dir, dirname, "combined.pem") == 0 &&
            json_object_set_new(run->ha_gone, name, json_string(path)) < 0)
            ret = -ENOMEM;
        for (size_t i = 0; i < N_DOMAIN_FILES; i++) {
            if (join_path(path, sizeof(path), run->out_dir, dirname, domain_files[i]) == 0 &&
                unlink(path) < 0 && errno != ENOENT) {
                ret = -errno;
                errmsg("sync: cannot remove %s: %s", path, strerror(errno));
            }
        }
        if (join_path(path, sizeof(path), run->out_dir, dirname, NULL) == 0 && rmdir(path) < 0 &&
            errno != ENOENT) {
            ret = -errno;
            errmsg("sync: cannot remove %s: %s", path, strerror(errno));
        }
    }
    json_object_del(state_domains(run), name);
    run->changed = true;
    printf("removed: %s\n", name);
    return ret;
}

/* True when every file of the domain in DIRNAME is still there. */
static bool files_present(struct sync_run *run, const char *dirname)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < N_DOMAIN_FILES; i++) {
        if (join_path(path, sizeof(path), run->out_dir, dirname, domain_files[i]) < 0 ||
            !file_exists(path))
            return false;
    }
    return true;
}

/* certd answered but refused: 401 (a token revoked, or not valid yet) and 429 (rate limit) may
 * pass, so they stop a batch like a transport failure does (-EACCES: nothing deleted, retried
 * with backoff by --watch) yet a one-shot sync reports them as refusals (exit 1), not as
 * "unreachable" (exit 3). Anything else is -EIO. */
static int refused_rc(long status)
{
    return status == 401 || status == 429 ? -EACCES : -EIO;
}

/* Transport failures are worth retrying (daemon restarting, network); the rest are answers. */
static bool is_transport_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EIO || rc == -ECANCELED;
}

/*
 * Brings domain NAME (normalised) up to date: fetches its bundle and writes its files when the
 * etag differs from the state's (or a file went missing). A domain that is gone (404, or
 * removed) has its folder deleted; one without a certificate yet is left as it is.
 * An event can reach us before the delivery index the bundle comes from has caught up with it
 * (it follows the same log, within a second): with WANT_SERIAL, a bundle with another serial, and
 * with WANT_GONE, a bundle at all, returns -ESTALE without writing, so the caller asks again;
 * so does no bundle yet with WANT_SERIAL (a domain's first certificate).
 * Returns 0, -EAGAIN on a transport failure (the caller retries later), -EACCES when certd
 * refused for now (401, 429), -ESTALE, or another -errno (reported).
 */
static int sync_domain(struct sync_run *run, const char *name, const char *want_serial,
                       bool want_gone)
{
    struct http_response resp = {0};
    char err[512], dirname[NAME_BUF_SIZE];
    char *path = api_domain_path(run->ctx, name, "/bundle");
    int ret;

    if (!path)
        return -ENOMEM;
    ret = http_request(run->ctx->http, "GET", path, NULL, &resp, err, sizeof(err));
    free(path);
    path = NULL;
    if (ret < 0) {
        errmsg("sync: %s", err);
        ret = is_transport_error(ret) ? -EAGAIN : ret;
        goto out;
    }
    if (resp.status == 404) {
        /* No bundle: is the domain gone, or just without a certificate so far? */
        http_response_clear(&resp);
        path = api_domain_path(run->ctx, name, "");
        if (!path) {
            ret = -ENOMEM;
            goto out;
        }
        ret = http_request(run->ctx->http, "GET", path, NULL, &resp, err, sizeof(err));
        if (ret < 0) {
            errmsg("sync: %s", err);
            ret = is_transport_error(ret) ? -EAGAIN : ret;
            goto out;
        }
        const char *status = json_string_value(json_object_get(resp.json, "status"));
        if (resp.status == 404 || (resp.status == 200 && status && !strcmp(status, "removed"))) {
            ret = json_object_get(state_domains(run), name) ? remove_domain(run, name) : 0;
        } else if (resp.status == 200 && want_serial) {
            ret = -ESTALE; /* a first certificate the delivery index does not serve yet */
        } else if (resp.status == 200) {
            ret = 0; /* no certificate (yet, or revoked): keep what the proxy has */
        } else {
            errmsg("sync: %s: HTTP %ld", name, resp.status);
            ret = -EIO;
        }
        goto out;
    }
    if (resp.status != 200 || !json_is_object(resp.json)) {
        const char *detail = json_string_value(json_object_get(resp.json, "detail"));
        errmsg("sync: %s: %s", name, detail ? detail : "unexpected answer from certd");
        ret = refused_rc(resp.status);
        goto out;
    }

    const char *bname = json_string_value(json_object_get(resp.json, "name"));
    const char *etag = json_string_value(json_object_get(resp.json, "etag"));
    const char *serial = json_string_value(json_object_get(resp.json, "serial"));
    json_t *names = json_object_get(resp.json, "names");
    if (!bname || !etag || !serial || !json_is_array(names) || domain_dirname(bname, dirname) < 0) {
        errmsg("sync: certd's bundle for %s is incomplete or names no valid domain", name);
        ret = -EBADMSG;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(names); i++) {
        char norm[NAME_BUF_SIZE], why[NAME_ERR_SIZE];
        const char *n = json_string_value(json_array_get(names, i));
        /* The names go into the crt-list, one line per domain: no blanks, no newlines. */
        if (!n || name_normalize(n, true, norm, why) < 0 || strcmp(norm, n) != 0) {
            errmsg("sync: certd's bundle for %s names an invalid server name", name);
            ret = -EBADMSG;
            goto out;
        }
    }
    if (want_gone || (want_serial && strcmp(want_serial, serial) != 0)) {
        ret = -ESTALE;
        goto out;
    }
    json_t *prev = json_object_get(state_domains(run), bname);
    const char *prev_etag = json_string_value(json_object_get(prev, "etag"));
    if (prev_etag && strcmp(prev_etag, etag) == 0 && files_present(run, dirname) &&
        json_equal(json_object_get(prev, "names"), names)) {
        ret = 0; /* unchanged: touch nothing */
        goto out;
    }
    ret = write_bundle(run, dirname, resp.json);
    if (ret < 0)
        goto out;
    json_t *entry = json_pack("{s:s, s:s, s:s, s:O}", "etag", etag, "serial", serial, "dir",
                              dirname, "names", names);
    if (!entry || json_object_set_new(state_domains(run), bname, entry) < 0) {
        ret = -ENOMEM;
        goto out;
    }
    run->changed = true;
    if (run->ha_socket &&
        (json_object_set_new(run->ha_dirty, bname, json_true()) < 0 ||
         (json_object_get(run->ha_gone, bname) && json_object_del(run->ha_gone, bname) < 0))) {
        ret = -ENOMEM;
        goto out;
    }
    printf("updated: %s (serial %s)\n", bname, serial);
    ret = 0;
out:
    free(path);
    http_response_clear(&resp);
    return ret;
}

/* ---- batches ----------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Rewrites DIR/haproxy.crt-list when its content changes: one line per domain, sorted by name,
 * "DIR/NAME/combined.pem name...". HAProxy's `crt DIR/` does not look into sub-folders; a
 * crt-list names each file and the SNI names it serves.
 */
static int write_crtlist(struct sync_run *run)
{
    json_t *doms = state_domains(run);
    size_t n = json_object_size(doms), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    char *text = NULL, *old = NULL;
    size_t len = 0;
    const char *k;
    json_t *v;
    char path[PATH_MAX];
    int ret = -ENOMEM;

    if (!keys)
        return -ENOMEM;
    json_object_foreach(doms, k, v) keys[i++] = k;
    qsort(keys, n, sizeof(*keys), cmp_str);
    if (buf_append(&text, &len, "", 0) < 0)
        goto out;
    for (i = 0; i < n; i++) {
        json_t *e = json_object_get(doms, keys[i]);
        const char *dir = json_string_value(json_object_get(e, "dir"));
        char line[PATH_MAX];
        if (!dir || join_path(line, sizeof(line), run->out_dir, dir, "combined.pem") < 0)
            continue;
        if (buf_append(&text, &len, line, strlen(line)) < 0)
            goto out;
        json_t *names = json_object_get(e, "names");
        for (size_t j = 0; j < json_array_size(names); j++) {
            const char *nm = json_string_value(json_array_get(names, j));
            if (!nm)
                continue;
            if (buf_append(&text, &len, " ", 1) < 0 || buf_append(&text, &len, nm, strlen(nm)) < 0)
                goto out;
        }
        if (buf_append(&text, &len, "\n", 1) < 0)
            goto out;
    }
    ret = join_path(path, sizeof(path), run->out_dir, SYNC_CRTLIST_FILE, NULL);
    if (ret < 0)
        goto out;
    FILE *f = fopen(path, "re");
    if (f) {
        old = calloc(1, len + 2);
        size_t got = old ? fread(old, 1, len + 1, f) : 0;
        fclose(f);
        if (old && got == len && memcmp(old, text, len) == 0) {
            ret = 0;
            goto out;
        }
    }
    ret = atomic_write_file(path, text, len, 0644);
    if (ret < 0) {
        errmsg("sync: cannot write %s: %s", path, strerror(-ret));
        goto out;
    }
    run->changed = true;
out:
    free(old);
    free(text);
    free(keys);
    return ret;
}

/*
 * HAProxy refuses to start when a crt-list it is told to load is missing, and a fresh host may
 * start it before certd was ever reachable: so the list is there from the first run on, written
 * from the state (empty on a fresh host; `strict-sni` lets HAProxy start on an empty list, see
 * docs/deliver.md). An existing list is left alone here: a lost or reset state must not empty a
 * list whose files are still in place, and the first batch brings it up to date anyway.
 * Returns 0 or -errno (reported).
 */
static int ensure_crtlist(struct sync_run *run)
{
    char path[PATH_MAX];
    struct stat st;
    int ret = join_path(path, sizeof(path), run->out_dir, SYNC_CRTLIST_FILE, NULL);
    if (ret < 0 || lstat(path, &st) == 0)
        return ret;
    if (errno != ENOENT) {
        ret = -errno;
        errmsg("sync: %s: %s", path, strerror(-ret));
        return ret;
    }
    bool changed = run->changed;
    ret = write_crtlist(run);
    run->changed = changed; /* no proxy can have loaded a list that did not exist: no reload */
    return ret;
}

/* ---- HAProxy's runtime API (--haproxy-socket) ------------------------------------------------ */

/*
 * HAProxy 2.6's CLI on its stats socket: one command per connection (without `prompt` the
 * connection closes after the answer), a payload after "<<" ending at the first empty line.
 * Certificates are named by the path HAProxy loaded them from, which is the path in the
 * crt-list we write. Debian's 2.6.12 keeps a single certificate transaction for the whole
 * process and answers a `set` for file B while A's is pending with "Transaction updated for
 * certificate A" (the commit then installs B's certificate under A; fixed upstream in 2024):
 * hence strictly one operation at a time, stale transactions aborted first and every answer
 * checked for the file it must name.
 */

/*
 * Sends CMD (and, when not NULL, PAYLOAD after "<<", with its empty lines dropped: an empty
 * line would end the payload early and HAProxy would run the rest as commands) over a new
 * connection to the socket, and reads the answer until HAProxy closes, at most
 * SYNC_HA_REPLY_MAX bytes (a longer answer is cut there: only listings grow that long, and
 * what they are read for comes first), waiting SYNC_HA_TIMEOUT_MS at most for each part.
 * *REPLY is malloc'd and NUL-terminated. Returns 0 or -errno (reported).
 */
static int ha_command(struct sync_run *run, const char *cmd, const char *payload, char **reply)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *msg = NULL, *ans = NULL;
    size_t msg_len = 0, ans_len = 0;
    int fd = -1, ret;

    *reply = NULL;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", run->ha_socket);
    ret = buf_append(&msg, &msg_len, cmd, strlen(cmd));
    if (ret == 0 && payload) {
        ret = buf_append(&msg, &msg_len, " <<\n", 4);
        for (const char *l = payload; ret == 0 && *l;) {
            const char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) : strlen(l);
            size_t k = n;
            while (k && (l[k - 1] == '\r' || l[k - 1] == ' ' || l[k - 1] == '\t'))
                k--;
            if (k && buf_append(&msg, &msg_len, l, k) == 0)
                ret = buf_append(&msg, &msg_len, "\n", 1);
            else if (k)
                ret = -ENOMEM;
            l += n + (nl ? 1 : 0);
        }
    }
    if (ret == 0)
        ret = buf_append(&msg, &msg_len, "\n", 1); /* ends the command, or the payload */
    if (ret < 0)
        goto out;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ret = -errno;
        errmsg("sync: HAProxy socket %s: %s", run->ha_socket, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < msg_len;) {
        ssize_t n = send(fd, msg + off, msg_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            errmsg("sync: HAProxy socket %s: %s", run->ha_socket, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    /* Answers (listings) can reach megabytes: read into a buffer that doubles, straight. */
    size_t cap = 0;
    while (ans_len < SYNC_HA_REPLY_MAX) {
        if (cap - ans_len < 4096 + 1) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *p = realloc(ans, ncap);
            if (!p) {
                ret = -ENOMEM;
                break;
            }
            ans = p;
            cap = ncap;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, SYNC_HA_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            ret = pr < 0 ? -errno : -ETIMEDOUT;
            errmsg("sync: HAProxy socket %s: no answer to '%s'", run->ha_socket, cmd);
            break;
        }
        size_t want = SYNC_HA_REPLY_MAX - ans_len;
        ssize_t n = recv(fd, ans + ans_len, want < 4096 ? want : 4096, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            errmsg("sync: HAProxy socket %s: %s", run->ha_socket, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        ans_len += (size_t)n;
    }
    if (ret == 0 && !ans && !(ans = malloc(1)))
        ret = -ENOMEM;
    if (ret == 0)
        ans[ans_len] = '\0';
    if (ret == 0) {
        *reply = ans;
        ans = NULL;
    }
out:
    if (fd >= 0)
        close(fd);
    buf_free(msg, msg_len); /* it holds the private key */
    free(ans);
    if (ret == -ENOMEM)
        errmsg("out of memory");
    return ret;
}

/* True when TEXT has a line that is exactly LINE (with PREFIX: that starts with LINE). */
static bool has_line(const char *text, const char *line, bool prefix)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if ((len == n || (prefix && len > n)) && memcmp(p, line, n) == 0)
            return true;
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

/* TMPL with its "%s" (if any) replaced by F, into OUT (cut to fit). Not a printf format: F is
 * a path and may hold '%'. */
static void fill_in(char *out, size_t sz, const char *tmpl, const char *f)
{
    const char *at = strstr(tmpl, "%s");
    if (!at)
        snprintf(out, sz, "%s", tmpl);
    else
        snprintf(out, sz, "%.*s%s%s", (int)(at - tmpl), tmpl, f, at + 2);
}

/* What an answer must hold (ha_expect). */
enum ha_check {
    HA_EXACT = 0,   /* a line that is EXPECT (or ALT) */
    HA_PREFIX = 1,  /* a line starting with it (where the rest names the crt-list) */
    HA_SUCCESS = 2, /* flag: and a line "Success!" (commit, add) */
};

/*
 * Runs CMD (with PAYLOAD) and checks the answer against EXPECT, or ALT when not NULL, as CHECK
 * says. Both are templates with one %s for F, the file the operation is about, so an answer about
 * another file is a failure. Returns 0, -EPROTO (the answer reported) or another -errno
 * (reported).
 */
static int ha_expect(struct sync_run *run, const char *cmd, const char *payload, const char *f,
                     const char *expect, const char *alt, int check)
{
    char want[PATH_MAX + 128], want2[PATH_MAX + 128], *reply = NULL;
    bool prefix = check & HA_PREFIX;
    int ret = ha_command(run, cmd, payload, &reply);
    if (ret < 0)
        return ret;
    fill_in(want, sizeof(want), expect, f);
    if (alt)
        fill_in(want2, sizeof(want2), alt, f);
    if ((!has_line(reply, want, prefix) && !(alt && has_line(reply, want2, prefix))) ||
        ((check & HA_SUCCESS) && !has_line(reply, "Success!", false))) {
        size_t n = strcspn(reply, "\n");
        errmsg("sync: HAProxy: '%s' answered: %.*s", cmd, (int)(n > 300 ? 300 : n), reply);
        ret = -EPROTO;
    }
    free(reply);
    return ret;
}

/* Reads the file at PATH (at most 1 MiB) into a malloc'd NUL-terminated *BUF. Returns 0 or
 * -errno (reported). */
static int read_small_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "re");
    char chunk[4096];
    size_t n;
    int ret = 0;

    *buf = NULL;
    *len = 0;
    if (!f) {
        errmsg("sync: cannot read %s: %s", path, strerror(errno));
        return -errno;
    }
    ret = buf_append(buf, len, "", 0);
    while (ret == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        ret = *len + n > 1024 * 1024 ? -EFBIG : buf_append(buf, len, chunk, n);
    }
    explicit_bzero(chunk, sizeof(chunk));
    if (ret == 0 && ferror(f))
        ret = -EIO;
    fclose(f);
    if (ret < 0) {
        errmsg("sync: cannot read %s: %s", path, strerror(-ret));
        buf_free(*buf, *len);
        *buf = NULL;
    }
    return ret;
}

/*
 * The crt-list as HAProxy knows it (`show ssl crt-list` names each list by the path in its
 * configuration, which may differ from ours by symlinks): the one resolving to
 * DIR/haproxy.crt-list, into LIST. Returns 0, -ENOENT (reported) or another -errno.
 */
static int ha_find_crtlist(struct sync_run *run, char list[PATH_MAX])
{
    char ours[PATH_MAX], *reply = NULL;
    int ret = join_path(ours, sizeof(ours), run->out_dir, SYNC_CRTLIST_FILE, NULL);
    if (ret < 0 || (ret = ha_command(run, "show ssl crt-list", NULL, &reply)) < 0)
        return ret;
    ret = -ENOENT;
    for (char *save = NULL, *l = strtok_r(reply, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char real[PATH_MAX];
        if (l[0] == '/' && (strcmp(l, ours) == 0 || (realpath(l, real) && !strcmp(real, ours))) &&
            strlen(l) < PATH_MAX) {
            memcpy(list, l, strlen(l) + 1);
            ret = 0;
            break;
        }
    }
    if (ret < 0)
        errmsg("sync: HAProxy loads no crt-list %s (bind ... ssl crt-list %s)", ours, ours);
    free(reply);
    return ret;
}

/*
 * What HAProxy holds now: aborts any pending certificate transaction (a leftover would capture
 * our next `set`), and fills STORE with the certificate files it knows (name -> true) and LINES
 * with LIST's entries (file -> [[line number, "filters"], ...]). Returns 0 or -errno.
 */
static int ha_snapshot(struct sync_run *run, const char *list, json_t *store, json_t *lines)
{
    char cmd[PATH_MAX + 64], *reply = NULL;
    int ret = ha_command(run, "show ssl cert", NULL, &reply);
    if (ret < 0)
        return ret;
    bool in_tx = false;
    for (char *save = NULL, *l = strtok_r(reply, "\n", &save); l && ret == 0;
         l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#') {
            in_tx = strcmp(l, "# transaction") == 0;
        } else if (in_tx && l[0] == '*') {
            snprintf(cmd, sizeof(cmd), "abort ssl cert %s", l + 1);
            ret = ha_expect(run, cmd, NULL, l + 1, "Transaction aborted for certificate '%s'!",
                            "No ongoing transaction!", HA_EXACT);
        } else if (l[0] == '/') {
            json_object_set_new(store, l, json_true());
        }
    }
    free(reply);
    if (ret < 0)
        return ret;
    snprintf(cmd, sizeof(cmd), "show ssl crt-list -n %s", list);
    if ((ret = ha_command(run, cmd, NULL, &reply)) < 0)
        return ret;
    /* "FILE:LINE filters..."; FILE is ours, without blanks or colons. */
    for (char *save = NULL, *l = strtok_r(reply, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(l, ' '), *colon;
        if (l[0] != '/')
            continue;
        if (sp)
            *sp = '\0';
        colon = strrchr(l, ':');
        long num;
        if (!colon)
            continue;
        *colon = '\0';
        if (!args_parse_long(colon + 1, 1, INT_MAX, &num))
            continue;
        json_t *arr = json_object_get(lines, l);
        if (!arr) {
            arr = json_array();
            json_object_set_new(lines, l, arr);
        }
        json_array_append_new(arr, json_pack("[I, s]", (json_int_t)num, sp ? sp + 1 : ""));
    }
    free(reply);
    return 0;
}

/* Deletes FILE's entries from LIST (ENTRIES as ha_snapshot gives them), last line first. */
static int ha_del_entries(struct sync_run *run, const char *list, const char *file, json_t *entries)
{
    char cmd[2 * PATH_MAX + 64];
    int ret = 0;
    for (size_t i = json_array_size(entries); i-- > 0;) {
        json_int_t num = json_integer_value(json_array_get(json_array_get(entries, i), 0));
        snprintf(cmd, sizeof(cmd), "del ssl crt-list %s %s:%" JSON_INTEGER_FORMAT, list, file, num);
        int r = ha_expect(run, cmd, NULL, file, "Entry '%s' deleted in crtlist '", NULL, HA_PREFIX);
        if (r < 0)
            ret = r;
    }
    return ret;
}

/*
 * Installs domain NAME's combined.pem (written already) into HAProxy: `set` + `commit` for a file
 * it has; `new ssl cert` first for one it has not; and `add ssl crt-list` (after deleting a stale
 * entry when the names changed) when LIST has no entry with the domain's names. Returns 0 or
 * -errno (reported).
 */
static int ha_install(struct sync_run *run, const char *list, const char *name, json_t *store,
                      json_t *lines)
{
    json_t *e = json_object_get(state_domains(run), name);
    const char *dir = json_string_value(json_object_get(e, "dir"));
    json_t *names = json_object_get(e, "names");
    char file[PATH_MAX], cmd[2 * PATH_MAX + 64], *pem = NULL, *filters = NULL, *entry = NULL;
    size_t pem_len = 0, filters_len = 0, entry_len = 0;
    int ret;

    if (!dir)
        return 0; /* removed meanwhile */
    if ((ret = join_path(file, sizeof(file), run->out_dir, dir, "combined.pem")) < 0 ||
        (ret = read_small_file(file, &pem, &pem_len)) < 0)
        goto out;
    if (!json_object_get(store, file)) {
        snprintf(cmd, sizeof(cmd), "new ssl cert %s", file);
        ret = ha_expect(run, cmd, NULL, file, "New empty certificate store '%s'!",
                        "Certificate '%s' already exists!", HA_EXACT);
        if (ret < 0)
            goto out;
    }
    snprintf(cmd, sizeof(cmd), "set ssl cert %s", file);
    ret = ha_expect(run, cmd, pem, file, "Transaction created for certificate %s!",
                    "Transaction updated for certificate %s!", HA_EXACT);
    if (ret == 0) {
        snprintf(cmd, sizeof(cmd), "commit ssl cert %s", file);
        /* "Committing FILE" then a dot per place it is used, then "Success!" */
        ret = ha_expect(run, cmd, NULL, file, "Committing %s", NULL, HA_PREFIX | HA_SUCCESS);
    }
    if (ret < 0) {
        /* Leave no transaction behind for the next `set` to fall into. */
        char *reply = NULL;
        snprintf(cmd, sizeof(cmd), "abort ssl cert %s", file);
        if (ha_command(run, cmd, NULL, &reply) == 0)
            free(reply);
        goto out;
    }

    ret = -ENOMEM;
    if (buf_append(&filters, &filters_len, "", 0) < 0)
        goto out;
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *nm = json_string_value(json_array_get(names, i));
        if (!nm)
            continue;
        if ((filters_len && buf_append(&filters, &filters_len, " ", 1) < 0) ||
            buf_append(&filters, &filters_len, nm, strlen(nm)) < 0)
            goto out;
    }
    json_t *have = json_object_get(lines, file);
    if (json_array_size(have) == 1 &&
        !strcmp(json_string_value(json_array_get(json_array_get(have, 0), 1)), filters)) {
        ret = 0;
        goto out;
    }
    if ((ret = ha_del_entries(run, list, file, have)) < 0)
        goto out;
    ret = -ENOMEM;
    if (buf_append(&entry, &entry_len, file, strlen(file)) < 0 ||
        buf_append(&entry, &entry_len, " ", 1) < 0 ||
        buf_append(&entry, &entry_len, filters, filters_len) < 0)
        goto out;
    snprintf(cmd, sizeof(cmd), "add ssl crt-list %s", list);
    ret = ha_expect(run, cmd, entry, file, "Inserting certificate '%s' in crt-list '", NULL,
                    HA_PREFIX | HA_SUCCESS);
out:
    buf_free(pem, pem_len);
    free(filters);
    free(entry);
    return ret;
}

/* Takes the combined.pem FILE of a removed domain out of LIST and HAProxy's memory. */
static int ha_uninstall(struct sync_run *run, const char *list, const char *file, json_t *store,
                        json_t *lines)
{
    char cmd[PATH_MAX + 64];
    int ret = ha_del_entries(run, list, file, json_object_get(lines, file));
    if (ret == 0 && json_object_get(store, file)) {
        snprintf(cmd, sizeof(cmd), "del ssl cert %s", file);
        ret = ha_expect(run, cmd, NULL, file, "Certificate '%s' deleted!", NULL, HA_EXACT);
    }
    return ret;
}

/*
 * Applies the batch's changes (RUN->ha_dirty, RUN->ha_gone) through the runtime API, one
 * operation at a time. What succeeded is dropped from the sets, what failed stays for the next
 * batch. Returns 0 when everything went in, else -1 (reported).
 */
static int ha_apply(struct sync_run *run)
{
    json_t *store = json_object(), *lines = json_object();
    char list[PATH_MAX];
    const char *k;
    void *tmp;
    json_t *v;
    int ret = -1;

    if (!store || !lines)
        goto out;
    if (ha_find_crtlist(run, list) < 0 || ha_snapshot(run, list, store, lines) < 0)
        goto out;
    ret = 0;
    json_object_foreach_safe(run->ha_dirty, tmp, k, v)
    {
        if (ha_install(run, list, k, store, lines) < 0) {
            ret = -1;
            continue;
        }
        printf("haproxy: updated %s\n", k);
        json_object_del(run->ha_dirty, k);
    }
    json_object_foreach_safe(run->ha_gone, tmp, k, v)
    {
        if (ha_uninstall(run, list, json_string_value(v), store, lines) < 0) {
            ret = -1;
            continue;
        }
        printf("haproxy: removed %s\n", k);
        json_object_del(run->ha_gone, k);
    }
out:
    json_decref(store);
    json_decref(lines);
    return ret;
}

/*
 * Ends a batch: the crt-list, the state file, then, when anything changed, HAProxy's runtime
 * update (--haproxy-socket) and the reload command (without a socket, or as the fallback when
 * the runtime update failed). Changes the runtime update could not apply are tried again at the
 * next batch unless a reload took them in. Returns 0, or -1 when one of them failed (reported).
 */
static int finish_batch(struct sync_run *run)
{
    int ret = 0;
    if (write_crtlist(run) < 0)
        ret = -1;
    if (state_save(run) < 0)
        ret = -1;
    bool pending = json_object_size(run->ha_dirty) || json_object_size(run->ha_gone);
    if (run->changed || pending) {
        bool need_reload = run->changed;
        run->changed = false;
        if (run->ha_socket && pending) {
            need_reload = ha_apply(run) < 0;
            if (need_reload && run->have_reload)
                errmsg("sync: HAProxy's runtime update failed; running the reload command");
            else if (need_reload)
                ret = -1;
        } else if (run->ha_socket) {
            need_reload = false; /* only the crt-list's order changed: nothing for HAProxy */
        }
        if (need_reload && run->have_reload) {
            if (run_reload(run) < 0)
                ret = -1;
            else if (run->ha_socket) {
                json_object_clear(run->ha_dirty);
                json_object_clear(run->ha_gone);
            }
        }
    }
    return ret;
}

/*
 * Adds the names of every domain the caller can see (GET /v1/domains, all pages) to NAMES.
 * Returns 0, -EAGAIN on a transport failure, -EACCES (401, 429) or -EIO (reported).
 */
static int list_domains(struct sync_run *run, json_t *names)
{
    char *cursor = NULL;
    int ret = 0;

    do {
        char path[1024];
        char *esc = cursor ? http_escape(run->ctx->http, cursor) : NULL;
        if (cursor && !esc) {
            ret = -ENOMEM;
            break;
        }
        snprintf(path, sizeof(path), "/v1/domains?limit=1000%s%s", esc ? "&cursor=" : "",
                 esc ? esc : "");
        free(esc);
        free(cursor);
        cursor = NULL;

        struct http_response resp = {0};
        char err[512];
        int rc = http_request(run->ctx->http, "GET", path, NULL, &resp, err, sizeof(err));
        if (rc < 0) {
            errmsg("sync: %s", err);
            ret = is_transport_error(rc) ? -EAGAIN : -EIO;
            break;
        }
        json_t *list = json_object_get(resp.json, "domains");
        if (resp.status != 200 || !json_is_array(list)) {
            const char *detail = json_string_value(json_object_get(resp.json, "detail"));
            errmsg("sync: listing domains: %s", detail ? detail : "unexpected answer");
            ret = refused_rc(resp.status);
            http_response_clear(&resp);
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d)
        {
            const char *nm = json_string_value(json_object_get(d, "name"));
            if (nm)
                json_array_append_new(names, json_string(nm));
        }
        const char *next = json_string_value(json_object_get(resp.json, "next_cursor"));
        if (next && !(cursor = strdup(next)))
            ret = -ENOMEM;
        http_response_clear(&resp);
    } while (cursor && ret == 0);
    free(cursor);
    return ret;
}

/*
 * A full resynchronisation: every selected domain compared and written as needed, folders of
 * domains that no longer exist deleted, then the batch ended. Returns 0, -EAGAIN when certd
 * could not be reached or -EACCES when it refused for now (nothing was deleted then), or -EIO
 * when some domains failed.
 */
static int full_sync(struct sync_run *run)
{
    json_t *names = json_array();
    int ret = 0, rc;

    if (!names)
        return -ENOMEM;
    if (run->only) {
        for (size_t i = 0; i < run->n_only; i++)
            json_array_append_new(names, json_string(run->only[i]));
    } else {
        rc = list_domains(run, names);
        if (rc < 0) {
            json_decref(names);
            return rc;
        }
    }
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        rc = sync_domain(run, json_string_value(v), NULL, false);
        if (rc == -EAGAIN || rc == -EACCES) {
            ret = rc;
            goto out;
        }
        if (rc < 0)
            ret = -EIO;
    }
    /* Domains synced before that are no longer listed (or selected) were removed meanwhile. */
    const char *k;
    void *tmp;
    json_object_foreach_safe(state_domains(run), tmp, k, v)
    {
        bool listed = false;
        size_t j;
        json_t *n;
        json_array_foreach(names, j, n)
        {
            if (strcmp(json_string_value(n), k) == 0) {
                listed = true;
                break;
            }
        }
        if (!listed && remove_domain(run, k) < 0)
            ret = -EIO;
    }
out:
    json_decref(names);
    if (finish_batch(run) < 0 && ret == 0)
        ret = -EIO;
    return ret;
}

/* GET /v1/events?after=AFTER&...; returns 0 with *RESP filled (any HTTP status), or -EAGAIN on
 * a transport failure (reported unless cancelled). */
static int get_events(struct sync_run *run, int64_t after, int wait_s, struct http_response *resp)
{
    char path[128], err[512];
    snprintf(path, sizeof(path), "/v1/events?after=%" PRId64 "&limit=1000&wait=%d", after, wait_s);
    http_client_set_timeout(run->ctx->http, (wait_s + 20) * 1000L);
    int rc = http_request(run->ctx->http, "GET", path, NULL, resp, err, sizeof(err));
    http_client_set_timeout(run->ctx->http, 0);
    if (rc < 0) {
        if (rc != -ECANCELED)
            errmsg("sync: %s", err);
        return -EAGAIN;
    }
    return 0;
}

/* The feed's current end, for a fresh follower: pages through the kept events without acting
 * on them (the full sync that follows covers them). Returns 0 or -EAGAIN/-EACCES/-EIO. */
static int catch_up_cursor(struct sync_run *run, int64_t *out)
{
    int64_t after = 0;
    for (;;) {
        struct http_response resp = {0};
        int rc = get_events(run, after, 0, &resp);
        if (rc < 0)
            return rc;
        json_t *last = json_object_get(resp.json, "last_id");
        json_t *events = json_object_get(resp.json, "events");
        if ((resp.status != 200 && resp.status != 410) || !json_is_integer(last)) {
            errmsg("sync: reading the change feed: HTTP %ld", resp.status);
            rc = refused_rc(resp.status);
            http_response_clear(&resp);
            return rc;
        }
        int64_t id = (int64_t)json_integer_value(last);
        bool done = resp.status == 410 || json_array_size(events) == 0 || id <= after;
        http_response_clear(&resp);
        after = id;
        if (done)
            break;
    }
    *out = after;
    return 0;
}

/* Event types after which a domain's files may have to change. */
static bool event_matters(const char *type)
{
    return !strncmp(type, "certificate.", strlen("certificate.")) ||
           !strcmp(type, "domain.removed") || !strcmp(type, "domain.purged") ||
           !strcmp(type, "domain.updated") || !strncmp(type, "key.", strlen("key."));
}

/*
 * Syncs each domain EVENTS name once, expecting what its last event says (a new serial, or the
 * domain gone), asking again for up to 10 s while the bundle lags behind the event. Returns 0
 * or -EAGAIN/-EACCES when certd could not be reached or refused for now.
 */
static int sync_events(struct sync_run *run, json_t *events)
{
    json_t *want = json_object(); /* domain -> its last event, in first-seen order */
    size_t i;
    json_t *ev;
    int rc = 0;

    if (!want)
        return -ENOMEM;
    json_array_foreach(events, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *dom = json_string_value(json_object_get(ev, "domain"));
        if (type && dom && event_matters(type) && selected(run, dom))
            json_object_set(want, dom, ev);
    }
    const char *dom;
    json_object_foreach(want, dom, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *serial = NULL;
        bool gone = !strcmp(type, "domain.removed") || !strcmp(type, "domain.purged");
        if (!strcmp(type, "certificate.issued") || !strcmp(type, "certificate.renewed"))
            serial = json_string_value(json_object_get(json_object_get(ev, "detail"), "serial"));
        int r;
        for (int attempt = 0;; attempt++) {
            bool last = attempt >= 50 || sync_stop;
            r = sync_domain(run, dom, last ? NULL : serial, last ? false : gone);
            if (r != -ESTALE)
                break;
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (r == -EAGAIN || r == -EACCES)
            rc = r;
    }
    json_decref(want);
    return rc;
}

/*
 * --watch: a full sync, then the change feed, syncing the domains its events name, one batch
 * (and one reload) per answer. Transport failures back off 1 s, 2 s, ... 30 s; 410 means events
 * were missed: a full sync from the last_id the answer gives. Returns when a stop signal came.
 */
static int watch(struct sync_run *run)
{
    int backoff = SYNC_BACKOFF_MIN_S;
    bool need_full = true;

    while (!sync_stop) {
        int rc = 0;
        if (!state_has_cursor(run)) {
            int64_t id;
            rc = catch_up_cursor(run, &id);
            if (rc == 0)
                state_set_cursor(run, id);
        }
        if (rc == 0 && need_full) {
            rc = full_sync(run);
            if (rc == 0 || rc == -EIO) /* per-domain failures are retried at the next event */
                need_full = false, rc = 0;
        }
        if (rc == 0 && !sync_stop) {
            struct http_response resp = {0};
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            rc = get_events(run, state_cursor(run), SYNC_WAIT_S, &resp);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (rc == 0) {
                json_t *last = json_object_get(resp.json, "last_id");
                json_t *events = json_object_get(resp.json, "events");
                if (resp.status == 410 && json_is_integer(last)) {
                    printf("change feed: events were missed; resynchronising\n");
                    state_set_cursor(run, (int64_t)json_integer_value(last));
                    need_full = true;
                } else if (resp.status == 200 && json_is_integer(last) && json_is_array(events)) {
                    rc = sync_events(run, events);
                    if (rc == 0)
                        state_set_cursor(run, (int64_t)json_integer_value(last));
                    finish_batch(run);
                    /* An empty answer long before the wait ended: certd has too many waiters
                     * and answers at once (docs/api.md); pause rather than spin. */
                    if (json_array_size(events) == 0 && t1.tv_sec - t0.tv_sec < 1)
                        sleep_interruptible(1);
                } else {
                    const char *detail = json_string_value(json_object_get(resp.json, "detail"));
                    errmsg("sync: change feed: HTTP %ld%s%s", resp.status, detail ? ": " : "",
                           detail ? detail : "");
                    rc = -EAGAIN;
                }
            }
            http_response_clear(&resp);
        }
        if (rc < 0 && !sync_stop) {
            sleep_interruptible(backoff);
            backoff = backoff * 2 > SYNC_BACKOFF_MAX_S ? SYNC_BACKOFF_MAX_S : backoff * 2;
        } else if (rc == 0) {
            backoff = SYNC_BACKOFF_MIN_S;
        }
        fflush(stdout);
    }
    state_save(run);
    return CERTCTL_EXIT_OK;
}

/* ---- the command ------------------------------------------------------------------------- */

static const struct opt_spec sync_opts[] = {
    {"--out-dir", true}, {"--domains", true},        {"--reload", true},
    {"--watch", false},  {"--haproxy-socket", true}, {NULL, false},
};

/* Parses --domains "a.example.com,*.b.example.com" into normalised names. */
static int parse_domains(struct sync_run *run, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    int ret = 0;
    if (!copy)
        return -ENOMEM;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char norm[NAME_BUF_SIZE], why[NAME_ERR_SIZE];
        if (name_normalize(tok, true, norm, why) < 0) {
            usage_error(run->ctx, "--domains: '%s': %s", tok, why);
            ret = -EINVAL;
            break;
        }
        if (selected(run, norm) && run->only)
            continue;
        char **grown = realloc(run->only, (run->n_only + 1) * sizeof(*grown));
        char *dup = strdup(norm);
        if (!grown || !dup) {
            free(dup);
            if (grown)
                run->only = grown;
            ret = -ENOMEM;
            break;
        }
        run->only = grown;
        run->only[run->n_only++] = dup;
    }
    free(copy);
    if (ret == 0 && run->n_only == 0) {
        usage_error(run->ctx, "--domains names no domain");
        ret = -EINVAL;
    }
    return ret;
}

static int run_sync(struct certctl *ctx, struct cli_args *args)
{
    struct sync_run run = {.ctx = ctx};
    const char *out_dir = NULL, *domains = NULL, *reload = NULL, *val;
    int which, ret = CERTCTL_EXIT_USAGE;
    enum args_result r;
    struct sigaction sa_old_term, sa_old_int;
    bool signals_set = false;

    while ((r = args_next(args, ctx, sync_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            goto out;
        if (r == ARGS_WORD) {
            usage_error(ctx, "unexpected argument '%s'", val);
            goto out;
        }
        switch (which) {
        case 0:
            out_dir = val;
            break;
        case 1:
            domains = val;
            break;
        case 2:
            reload = val;
            break;
        case 3:
            run.watch = true;
            break;
        case 4:
            run.ha_socket = val;
            break;
        }
    }
    if (!out_dir || !out_dir[0]) {
        usage_error(ctx, "missing --out-dir DIR");
        goto out;
    }
    if (domains) {
        int rc = parse_domains(&run, domains);
        if (rc < 0) {
            if (rc == -ENOMEM) {
                errmsg("out of memory");
                ret = CERTCTL_EXIT_FAILED;
            }
            goto out;
        }
    }
    if (reload) {
        if (strlen(reload) > SYNC_RELOAD_MAX || !(run.reload_buf = strdup(reload)) ||
            split_command(run.reload_buf, run.reload_argv, SYNC_RELOAD_ARGS_MAX) < 0) {
            usage_error(ctx, "--reload: not a command (unclosed quote, or empty, or too long)");
            goto out;
        }
        run.have_reload = true;
    }
    if (run.ha_socket && (!run.ha_socket[0] ||
                          strlen(run.ha_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))) {
        usage_error(ctx, "--haproxy-socket: empty, or too long for a unix socket path");
        goto out;
    }
    ret = CERTCTL_EXIT_FAILED;
    if (run.ha_socket && (!(run.ha_dirty = json_object()) || !(run.ha_gone = json_object()))) {
        errmsg("out of memory");
        goto out;
    }
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        errmsg("sync: cannot create %s: %s", out_dir, strerror(errno));
        goto out;
    }
    if (!realpath(out_dir, run.out_dir)) {
        errmsg("sync: %s: %s", out_dir, strerror(errno));
        goto out;
    }
    if (state_load(&run) < 0) {
        errmsg("out of memory");
        goto out;
    }
    if (ensure_crtlist(&run) < 0)
        goto out;

    if (run.watch) {
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, &sa_old_term);
        sigaction(SIGINT, &sa, &sa_old_int);
        signals_set = true;
        http_client_set_cancel_flag(ctx->http, &sync_stop);
        ret = watch(&run);
        http_client_set_cancel_flag(ctx->http, NULL);
        goto out;
    }
    int rc = full_sync(&run);
    ret = rc == 0         ? CERTCTL_EXIT_OK
          : rc == -EAGAIN ? CERTCTL_EXIT_UNREACHABLE
                          : CERTCTL_EXIT_FAILED;
out:
    if (signals_set) {
        sigaction(SIGTERM, &sa_old_term, NULL);
        sigaction(SIGINT, &sa_old_int, NULL);
    }
    for (size_t i = 0; i < run.n_only; i++)
        free(run.only[i]);
    free(run.only);
    free(run.reload_buf);
    json_decref(run.state);
    json_decref(run.ha_dirty);
    json_decref(run.ha_gone);
    return ret;
}

const struct command cmd_sync = {
    .name = "sync",
    .summary = "Write certificates and keys as files for nginx/HAProxy",
    .usage = "Usage: certctl sync --out-dir DIR [--domains LIST] [--reload CMD] [--watch]\n"
             "                    [--haproxy-socket PATH]\n"
             "\n"
             "Writes each domain's current certificate and key into DIR/NAME/ (a wildcard\n"
             "*.example.com into DIR/_.example.com/): cert.pem (the leaf), chain.pem (the\n"
             "intermediates), fullchain.pem (both, leaf first: nginx's ssl_certificate),\n"
             "privkey.pem (mode 0600) and combined.pem (full chain then key, mode 0600: the\n"
             "HAProxy form). DIR/haproxy.crt-list names every combined.pem with its server\n"
             "names; it exists from the first run on, empty until a certificate is issued\n"
             "(HAProxy starts on an empty crt-list with strict-sni on its bind line).\n"
             "Files are replaced atomically and only when the certificate or key\n"
             "changed (DIR/.sync-state remembers what was written); the folder of a removed\n"
             "domain is deleted.\n"
             "\n"
             "Options:\n"
             "  --out-dir DIR    Where the files go (created if missing)\n"
             "  --domains LIST   Comma-separated domains (primary names) to sync; default:\n"
             "                   every domain the caller can see\n"
             "  --reload CMD     Run CMD once after each batch that changed files. CMD is split\n"
             "                   into words at blanks ('...' and \"...\" quote, \\ escapes) and\n"
             "                   run without a shell; write \"sh -c '...'\" for shell syntax.\n"
             "                   A failing CMD makes a one-shot sync exit 1\n"
             "  --watch          Keep running: follow certd's change feed and sync each\n"
             "                   domain when its certificate changes or it is removed; retry\n"
             "                   with backoff (1 s to 30 s) while certd is unreachable; exit 0\n"
             "                   on SIGTERM or SIGINT\n"
             "  --haproxy-socket PATH\n"
             "                   Also update HAProxy through its runtime API (stats socket\n"
             "                   at admin level) without a reload: changed certificates are\n"
             "                   replaced, new domains added to the crt-list, removed ones\n"
             "                   taken out. HAProxy must load DIR/haproxy.crt-list. When that\n"
             "                   fails, --reload CMD runs instead (if given)\n"
             "\n"
             "Needs the deployer role (keys). With --url, --token-file and --ca-file (global\n"
             "options) it talks to certd's HTTPS listener with a token instead of the socket.\n",
    .run = run_sync,
};
