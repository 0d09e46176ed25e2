#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/spawn.h"

static char *const path_env[] = {"PATH=/usr/bin:/bin", NULL};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs /bin/sh -c SCRIPT with PATH set. */
static int run_sh(const char *script, unsigned timeout_ms, size_t max, struct spawn_result *res)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    return spawn_run(argv, path_env, timeout_ms, max, res);
}

/* True when PID no longer runs (gone, or a zombie waiting for init). */
static bool process_gone(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close = strrchr(buf, ')');
    return close && (close[2] == 'Z' || close[2] == 'X');
}

static void test_exit_status(void **state)
{
    struct spawn_result res;
    assert_int_equal(run_sh("exit 7", 5000, 1024, &res), 0);
    assert_int_equal(res.exit_status, 7);
    assert_int_equal(res.term_signal, 0);
    assert_false(res.timed_out);
    assert_int_equal(res.out_len, 0);
    assert_string_equal(res.out, "");
    spawn_result_free(&res);

    assert_int_equal(run_sh("exit 0", 5000, 1024, &res), 0);
    assert_int_equal(res.exit_status, 0);
    spawn_result_free(&res);

    /* killed by a signal of its own */
    assert_int_equal(run_sh("kill -USR1 $$", 5000, 1024, &res), 0);
    assert_int_equal(res.exit_status, -1);
    assert_int_equal(res.term_signal, SIGUSR1);
    assert_false(res.timed_out);
    spawn_result_free(&res);
}

static void test_capture(void **state)
{
    struct spawn_result res;
    assert_int_equal(run_sh("echo out; echo err >&2; printf 'a\\0b'", 5000, 1024, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(res.out_len, 7);
    assert_memory_equal(res.out, "out\na\0b", 7);
    assert_int_equal(res.out[7], '\0');
    assert_string_equal(res.err, "err\n");
    assert_int_equal(res.err_len, 4);
    assert_false(res.out_truncated);
    assert_false(res.err_truncated);
    spawn_result_free(&res);
    assert_null(res.out);
    assert_int_equal(res.out_len, 0);

    /* more than a pipe buffer on both streams at once: no deadlock, nothing lost */
    assert_int_equal(run_sh("head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2; echo end",
                            10000, 1 << 20, &res),
                     0);
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(res.out_len, 300004);
    assert_int_equal(res.err_len, 200000);
    assert_memory_equal(res.out + 300000, "end\n", 4);
    spawn_result_free(&res);
}

static void test_output_cap(void **state)
{
    struct spawn_result res;
    int64_t t0 = now_ms();
    /* the child writes far more than the cap and must still run to completion */
    assert_int_equal(
        run_sh("head -c 1000000 /dev/zero | tr '\\0' a; echo done >&2; exit 3", 10000, 1000, &res),
        0);
    assert_true(now_ms() - t0 < 8000);
    assert_false(res.timed_out);
    assert_int_equal(res.exit_status, 3);
    assert_int_equal(res.out_len, 1000);
    assert_true(res.out_truncated);
    for (size_t i = 0; i < res.out_len; i++)
        assert_int_equal(res.out[i], 'a');
    assert_int_equal(res.out[1000], '\0');
    assert_string_equal(res.err, "done\n");
    assert_false(res.err_truncated);
    spawn_result_free(&res);

    /* a zero cap keeps nothing */
    assert_int_equal(run_sh("echo hello", 5000, 0, &res), 0);
    assert_int_equal(res.out_len, 0);
    assert_true(res.out_truncated);
    assert_string_equal(res.out, "");
    spawn_result_free(&res);
}

static void test_timeout_kills(void **state)
{
    struct spawn_result res;
    char *argv[] = {"/bin/sleep", "30", NULL};
    int64_t t0 = now_ms();
    assert_int_equal(spawn_run(argv, path_env, 300, 1024, &res), 0);
    int64_t took = now_ms() - t0;
    assert_true(res.timed_out);
    assert_int_equal(res.exit_status, -1);
    assert_int_equal(res.term_signal, SIGTERM);
    assert_true(took >= 290);
    assert_true(took < 3000);
    spawn_result_free(&res);
}

static void test_timeout_kills_group_and_escalates(void **state)
{
    struct spawn_result res;
    /* SIGTERM is ignored by the shell and, inherited through exec, by its sleep: only the
     * SIGKILL after the grace period ends them. The background sleep must die with the group. */
    int64_t t0 = now_ms();
    assert_int_equal(
        run_sh("trap '' TERM; sleep 30 & echo $!; sleep 30; echo never", 300, 1024, &res), 0);
    int64_t took = now_ms() - t0;
    assert_true(res.timed_out);
    assert_int_equal(res.exit_status, -1);
    assert_int_equal(res.term_signal, SIGKILL);
    assert_true(took >= 300 + SPAWN_KILL_GRACE_MS - 20);
    assert_true(took < 5000);
    assert_null(strstr(res.out, "never"));
    char *end;
    long bg = strtol(res.out, &end, 10);
    assert_true(bg > 0);
    assert_int_equal(*end, '\n');
    for (int i = 0; i < 100 && !process_gone(bg); i++)
        usleep(20000);
    assert_true(process_gone(bg));
    spawn_result_free(&res);
}

static void test_leftover_descendant_holding_pipe(void **state)
{
    struct spawn_result res;
    /* The shell exits at once but leaves a background job holding stdout: spawn_run must not
     * wait for the deadline, and the job is killed. */
    int64_t t0 = now_ms();
    assert_int_equal(run_sh("sleep 30 & echo $!; exit 4", 20000, 1024, &res), 0);
    int64_t took = now_ms() - t0;
    assert_false(res.timed_out);
    assert_int_equal(res.exit_status, 4);
    assert_true(took < SPAWN_DRAIN_MS + 2000);
    long bg = strtol(res.out, NULL, 10);
    assert_true(bg > 0);
    for (int i = 0; i < 100 && !process_gone(bg); i++)
        usleep(20000);
    assert_true(process_gone(bg));
    spawn_result_free(&res);
}

static void test_environment(void **state)
{
    struct spawn_result res;
    char *env[] = {"FOO=bar baz", "CERTD_DOMAIN=example.com", NULL};
    char *argv[] = {"/usr/bin/env", NULL};
    assert_int_equal(spawn_run(argv, env, 5000, 4096, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_string_equal(res.out, "FOO=bar baz\nCERTD_DOMAIN=example.com\n");
    spawn_result_free(&res);

    /* NULL is an empty environment, not the daemon's */
    setenv("CERTD_TEST_LEAK", "1", 1);
    assert_int_equal(spawn_run(argv, NULL, 5000, 4096, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(res.out_len, 0);
    spawn_result_free(&res);
}

static void test_fds_not_inherited(void **state)
{
    /* a daemon fd opened without O_CLOEXEC, placed at a known number */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 47), 47);
    close(fd);
    assert_int_equal(fcntl(47, F_GETFD) & FD_CLOEXEC, 0);

    struct spawn_result res;
    assert_int_equal(run_sh("for f in /proc/$$/fd/*; do echo \"${f##*/}\"; done", 5000, 4096, &res),
                     0);
    assert_int_equal(res.exit_status, 0);
    /* stdio is there (so the listing works) and nothing above it that we opened */
    assert_non_null(strstr(res.out, "0\n1\n2\n"));
    char *save = NULL;
    for (char *line = strtok_r(res.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long n = strtol(line, NULL, 10);
        assert_true(n <= 2 || n == 3 /* dash's own dir fd while globbing, at most */);
        assert_true(n != 47);
    }
    spawn_result_free(&res);

    /* stdin is /dev/null */
    char *argv[] = {"/usr/bin/readlink", "/proc/self/fd/0", NULL};
    assert_int_equal(spawn_run(argv, path_env, 5000, 4096, &res), 0);
    assert_string_equal(res.out, "/dev/null\n");
    spawn_result_free(&res);
    close(47);
}

static void test_signals_reset_and_new_group(void **state)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);

    struct spawn_result res;
    char *argv[] = {"/bin/grep", "-E", "^(SigBlk|SigIgn):", "/proc/self/status", NULL};
    assert_int_equal(spawn_run(argv, path_env, 5000, 4096, &res), 0);
    unsigned long long blk = 1, ign = 1;
    assert_int_equal(sscanf(res.out, "SigBlk:\t%llx\nSigIgn:\t%llx\n", &blk, &ign), 2);
    assert_int_equal(blk, 0);
    /* Bits are signal - 1. glibc's posix_spawn leaves its two internal signals (32 and 33, below
     * SIGRTMIN) ignored in every child and no attribute resets them; every signal a program can
     * use must be at its default. */
    unsigned long long glibc_internal = (1ULL << 31) | (1ULL << 32);
    assert_int_equal(ign & ~glibc_internal, 0);
    spawn_result_free(&res);

    signal(SIGPIPE, old_pipe);
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* own process group: pgrp (field 5 of /proc/PID/stat) equals the pid */
    assert_int_equal(run_sh("read pid comm st ppid pgrp rest < /proc/$$/stat; echo \"$pid $pgrp\"",
                            5000, 4096, &res),
                     0);
    long pid = 0, pgrp = 0;
    assert_int_equal(sscanf(res.out, "%ld %ld", &pid, &pgrp), 2);
    assert_true(pid > 0);
    assert_int_equal(pid, pgrp);
    assert_true(pgrp != (long)getpgrp());
    spawn_result_free(&res);
}

static void test_errors(void **state)
{
    struct spawn_result res;
    char *missing[] = {"/nonexistent/certd-hook", NULL};
    assert_int_equal(spawn_run(missing, NULL, 1000, 1024, &res), -ENOENT);
    assert_null(res.out);
    assert_null(res.err);
    spawn_result_free(&res);

    char *relative[] = {"sh", "-c", "true", NULL};
    assert_int_equal(spawn_run(relative, NULL, 1000, 1024, &res), -EINVAL);
    char *ok[] = {"/bin/true", NULL};
    assert_int_equal(spawn_run(ok, NULL, 0, 1024, &res), -EINVAL);
    assert_int_equal(spawn_run(NULL, NULL, 1000, 1024, &res), -EINVAL);
    char *empty[] = {NULL};
    assert_int_equal(spawn_run(empty, NULL, 1000, 1024, &res), -EINVAL);
    spawn_result_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_timeout_kills),
        cmocka_unit_test(test_timeout_kills_group_and_escalates),
        cmocka_unit_test(test_leftover_descendant_holding_pipe),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_fds_not_inherited),
        cmocka_unit_test(test_signals_reset_and_new_group),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
