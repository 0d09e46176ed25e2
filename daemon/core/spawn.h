/*
 * Running a hook command (dns-01 hooks, deploy hooks) from the multithreaded daemon.
 *
 * The child is started with posix_spawn (clone+exec without running user code between them, so
 * no malloc or lock in a half-copied process), stdin from /dev/null, stdout and stderr captured.
 * It gets its own process group so a timeout kills everything it started, an empty signal mask
 * and default signal dispositions (the daemon blocks signals in every thread and may ignore
 * SIGPIPE). glibc (2.36) leaves its two internal signals 32 and 33, which lie below SIGRTMIN and
 * no program may use, ignored in the child whatever we ask.
 *
 * File descriptors: every fd the daemon opens MUST be O_CLOEXEC (open(O_CLOEXEC), socket(
 * SOCK_CLOEXEC), accept4(SOCK_CLOEXEC), pipe2(O_CLOEXEC), fopen("re"), ...), or a hook inherits
 * the database, the API socket or key files. As a second line of defence the child also closes
 * every fd >= 3 before exec (posix_spawn_file_actions_addclosefrom_np, glibc >= 2.34).
 *
 * Children are reaped by spawn_run itself: nothing else in the daemon may wait for arbitrary
 * children (waitpid(-1, ...)) or set SIGCHLD to SIG_IGN.
 */
#ifndef CERTD_CORE_SPAWN_H
#define CERTD_CORE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

struct spawn_result {
    int exit_status; /* 0..255, or -1 if the child was killed by a signal */
    int term_signal; /* the signal that killed it, 0 if it exited */
    bool timed_out;  /* the deadline passed and certd killed it */
    char *out;       /* captured stdout, NUL-terminated (may hold NULs: use out_len) */
    size_t out_len;
    char *err; /* captured stderr, likewise */
    size_t err_len;
    bool out_truncated; /* the child wrote more than max_output bytes to stdout */
    bool err_truncated; /* likewise for stderr */
};

/*
 * Runs ARGV (argv[0] an absolute path; no PATH lookup) with environment ENVP (NULL means an empty
 * environment: callers pass what the hook needs, PATH included) and waits at most TIMEOUT_MS
 * (> 0) milliseconds for it. Each of stdout and stderr keeps its first MAX_OUTPUT bytes; the rest
 * is read and dropped so the child never blocks on a full pipe.
 *
 * On timeout the process group gets SIGTERM, and SIGKILL SPAWN_KILL_GRACE_MS later if it is still
 * there. When the command exits but something it started keeps stdout/stderr open, the output is
 * read for at most SPAWN_DRAIN_MS more, then that leftover process group is killed with SIGKILL.
 * The child is always reaped before returning.
 *
 * Returns 0 when the command ran (whatever its exit status: look at *RES, free it with
 * spawn_result_free), -EINVAL for bad arguments, or the negative errno of the failed step
 * (-ENOENT or -EACCES when argv[0] cannot be executed, -ENOMEM, -EMFILE ...); *RES is then
 * empty and need not be freed (freeing it is harmless).
 */
#define SPAWN_KILL_GRACE_MS 500
#define SPAWN_DRAIN_MS 1000
int spawn_run(char *const argv[], char *const envp[], unsigned timeout_ms, size_t max_output,
              struct spawn_result *res);

/* Frees the captured output and zeroes *RES. NULL-safe. */
void spawn_result_free(struct spawn_result *res);

#endif
