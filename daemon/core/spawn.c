#include "core/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_ADDCLOSEFROM 1
#endif

/* While the child runs we also poll for its exit, since a grandchild may hold the pipes open
 * after the child is gone; this bounds how late we notice. */
#define POLL_SLICE_MS 50
#define IDLE_SLICE_MS 10

struct capture {
    int fd;
    char *buf;
    size_t len;
    size_t cap; /* allocated bytes, room for the NUL included */
    size_t max;
    bool truncated;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Moves FD above 2 so that dup2'ing the pipes onto 1 and 2 in the child can never clobber the
 * other pipe (possible only if the daemon runs with a closed stdio fd). */
static int fd_above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return nfd;
}

static int make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    p[0] = fd_above_stdio(p[0]);
    p[1] = fd_above_stdio(p[1]);
    if (p[0] < 0 || p[1] < 0)
        goto fail;
    /* Only our end is non-blocking: the child's stdout must stay a normal blocking fd. */
    int fl = fcntl(p[0], F_GETFL);
    if (fl < 0 || fcntl(p[0], F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    return 0;
fail:;
    int r = -errno;
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
    return r;
}

static void capture_close(struct capture *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Reads what is available; keeps up to c->max bytes and drops the rest. Closes at EOF. */
static void capture_read(struct capture *c)
{
    char tmp[16384];

    for (;;) {
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                capture_close(c);
            return;
        }
        if (n == 0) {
            capture_close(c);
            return;
        }
        size_t keep = (size_t)n;
        if (keep > c->max - c->len) {
            keep = c->max - c->len;
            c->truncated = true;
        }
        if (keep == 0)
            continue;
        if (c->len + keep + 1 > c->cap) {
            size_t ncap = c->cap ? c->cap : 4096;
            while (ncap < c->len + keep + 1)
                ncap *= 2;
            if (c->max < SIZE_MAX && ncap > c->max + 1)
                ncap = c->max + 1;
            char *nb = realloc(c->buf, ncap);
            if (!nb) {
                /* Out of memory mid-run: keep what we have rather than abandon the child. */
                c->truncated = true;
                c->max = c->len;
                continue;
            }
            c->buf = nb;
            c->cap = ncap;
        }
        memcpy(c->buf + c->len, tmp, keep);
        c->len += keep;
    }
}

/* True once PID has terminated; leaves it a zombie (WNOWAIT) so its pid, and with it the process
 * group id, cannot be reused while we still signal the group. */
static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD;
    return si.si_pid == pid;
}

void spawn_result_free(struct spawn_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
}

int spawn_run(char *const argv[], char *const envp[], unsigned timeout_ms, size_t max_output,
              struct spawn_result *res)
{
    static char *const empty_env[] = {NULL};
    struct capture cout = {.fd = -1, .max = max_output};
    struct capture cerr = {.fd = -1, .max = max_output};
    int pout[2] = {-1, -1}, perr[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_init = false, attr_init = false;
    pid_t pid = -1;
    int r;

    if (!res)
        return -EINVAL;
    memset(res, 0, sizeof(*res));
    if (!argv || !argv[0] || argv[0][0] != '/' || timeout_ms == 0)
        return -EINVAL;

    r = make_pipe(pout);
    if (r < 0)
        goto out;
    r = make_pipe(perr);
    if (r < 0)
        goto out;

    r = -posix_spawn_file_actions_init(&fa);
    if (r < 0)
        goto out;
    fa_init = true;
    r = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (r == 0)
        r = -posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    if (r == 0)
        r = -posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
#ifdef HAVE_ADDCLOSEFROM
    /* The pipe ends are O_CLOEXEC already; this catches any fd someone opened without it. */
    if (r == 0)
        r = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (r < 0)
        goto out;

    r = -posix_spawnattr_init(&attr);
    if (r < 0)
        goto out;
    attr_init = true;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                             POSIX_SPAWN_SETSIGDEF);
    if (r == 0)
        r = -posix_spawnattr_setpgroup(&attr, 0);
    if (r == 0)
        r = -posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0)
        r = -posix_spawnattr_setsigdefault(&attr, &all);
    if (r < 0)
        goto out;

    /* glibc reports exec failures (ENOENT, EACCES) here, not as an exit status of 127. */
    r = -posix_spawn(&pid, argv[0], &fa, &attr, argv, envp ? envp : empty_env);
    if (r < 0) {
        pid = -1;
        goto out;
    }
    close(pout[1]);
    close(perr[1]);
    pout[1] = perr[1] = -1;
    cout.fd = pout[0];
    cerr.fd = perr[0];
    pout[0] = perr[0] = -1;

    int64_t deadline = now_ms() + timeout_ms;
    int64_t exited_at = -1, term_at = -1;
    bool kill_sent = false;
    for (;;) {
        int64_t t = now_ms();
        bool pipes_open = cout.fd >= 0 || cerr.fd >= 0;

        if (exited_at < 0 && child_exited(pid))
            exited_at = t;

        int64_t wake;
        if (exited_at >= 0) {
            if (!pipes_open)
                break;
            /* After a timeout, or once descendants have held the pipes for too long, stop
             * reading and take the rest of the process group down with it. */
            if (res->timed_out || t - exited_at >= SPAWN_DRAIN_MS) {
                kill(-pid, SIGKILL);
                break;
            }
            wake = exited_at + SPAWN_DRAIN_MS;
        } else if (term_at < 0) {
            if (t >= deadline) {
                res->timed_out = true;
                kill(-pid, SIGTERM);
                term_at = t;
                wake = t + SPAWN_KILL_GRACE_MS;
            } else {
                wake = deadline;
            }
        } else if (!kill_sent) {
            if (t - term_at >= SPAWN_KILL_GRACE_MS) {
                kill(-pid, SIGKILL);
                kill_sent = true;
                wake = t + IDLE_SLICE_MS;
            } else {
                wake = term_at + SPAWN_KILL_GRACE_MS;
            }
        } else {
            wake = t + IDLE_SLICE_MS;
        }

        int64_t wait = wake - t;
        int64_t slice = pipes_open ? POLL_SLICE_MS : IDLE_SLICE_MS;
        if (wait > slice)
            wait = slice;
        if (wait < 0)
            wait = 0;

        struct pollfd pfd[2];
        struct capture *cap[2];
        nfds_t n = 0;
        if (cout.fd >= 0) {
            pfd[n] = (struct pollfd){.fd = cout.fd, .events = POLLIN};
            cap[n++] = &cout;
        }
        if (cerr.fd >= 0) {
            pfd[n] = (struct pollfd){.fd = cerr.fd, .events = POLLIN};
            cap[n++] = &cerr;
        }
        int pr = poll(n ? pfd : NULL, n, (int)wait);
        if (pr < 0 && errno != EINTR) {
            /* Cannot watch the pipes any more: do not leave the child behind. */
            kill(-pid, SIGKILL);
            capture_close(&cout);
            capture_close(&cerr);
            continue;
        }
        for (nfds_t i = 0; pr > 0 && i < n; i++) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
                capture_read(cap[i]);
        }
    }

    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (WIFEXITED(status)) {
        res->exit_status = WEXITSTATUS(status);
    } else {
        res->exit_status = -1;
        res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }

    if (!cout.buf)
        cout.buf = calloc(1, 1);
    if (!cerr.buf)
        cerr.buf = calloc(1, 1);
    if (!cout.buf || !cerr.buf) {
        r = -ENOMEM;
        memset(res, 0, sizeof(*res));
        goto out;
    }
    cout.buf[cout.len] = '\0';
    cerr.buf[cerr.len] = '\0';
    res->out = cout.buf;
    res->out_len = cout.len;
    res->out_truncated = cout.truncated;
    res->err = cerr.buf;
    res->err_len = cerr.len;
    res->err_truncated = cerr.truncated;
    cout.buf = cerr.buf = NULL;
    r = 0;
out:
    capture_close(&cout);
    capture_close(&cerr);
    free(cout.buf);
    free(cerr.buf);
    for (int i = 0; i < 2; i++) {
        if (pout[i] >= 0)
            close(pout[i]);
        if (perr[i] >= 0)
            close(perr[i]);
    }
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_init)
        posix_spawnattr_destroy(&attr);
    return r;
}
