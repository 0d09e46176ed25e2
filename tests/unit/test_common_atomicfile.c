/* Tests for common/atomicfile.c: modes, replacement, in-place writes to FIFOs and devices, and
 * that failures leave neither a changed target nor a temporary file behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/atomicfile.h"

struct fixture {
    char dir[PATH_MAX];
};

static int setup(void **state)
{
    static struct fixture f;
    const char *base = getenv("CERTD_TEST_TMPDIR");

    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) < 0 && errno != EEXIST)
        return -1;
    snprintf(f.dir, sizeof(f.dir), "%s/atomicfile-XXXXXX", base);
    if (!mkdtemp(f.dir))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *de;
    char p[PATH_MAX + 256];

    if (d) {
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
            chmod(p, 0700);
            if (unlink(p) < 0)
                rmdir(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    return 0;
}

static void path_in(const struct fixture *f, const char *name, char out[PATH_MAX])
{
    int n = snprintf(out, PATH_MAX, "%s/%s", f->dir, name);
    assert_true(n > 0 && n < PATH_MAX);
}

/* Reads the whole file at PATH into BUF (NUL-terminated); returns its length. */
static size_t slurp(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;

    assert_true(fd >= 0);
    while ((n = read(fd, buf + len, bufsz - 1 - len)) > 0)
        len += (size_t)n;
    assert_true(n == 0);
    close(fd);
    buf[len] = '\0';
    return len;
}

/* Number of directory entries other than "." and "..": finds leftover temporary files. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static void test_create_mode(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX], buf[256];
    struct stat st;
    mode_t old = umask(022);

    path_in(f, "key.pem", path);
    assert_int_equal(atomic_write_file(path, "secret\n", 7, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(slurp(path, buf, sizeof(buf)), 7);
    assert_string_equal(buf, "secret\n");

    /* the mode is exact even when the umask would take bits away */
    umask(077);
    path_in(f, "cert.pem", path);
    assert_int_equal(atomic_write_file(path, "cert", 4, 0644), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    umask(old);

    /* empty content is a file too */
    path_in(f, "empty", path);
    assert_int_equal(atomic_write_file(path, NULL, 0, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* no temporary files left */
    assert_int_equal(count_entries(f->dir), 3);
}

static void test_replace(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX], buf[256];
    struct stat before, after;

    path_in(f, "replace.pem", path);
    assert_int_equal(atomic_write_file(path, "old content that is longer", 26, 0644), 0);
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(atomic_write_file(path, "new", 3, 0600), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    assert_int_equal(after.st_mode & 07777, 0600);
    assert_int_equal(slurp(path, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "new");
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_relative_path(void **state)
{
    struct fixture *f = *state;
    char cwd[PATH_MAX], buf[64];

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(atomic_write_file("rel.pem", "rel", 3, 0600), 0);
    assert_int_equal(slurp("rel.pem", buf, sizeof(buf)), 3);
    assert_string_equal(buf, "rel");
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_symlink_replaced(void **state)
{
    struct fixture *f = *state;
    char target[PATH_MAX], link[PATH_MAX], buf[64];
    struct stat st;

    path_in(f, "target", target);
    path_in(f, "link", link);
    assert_int_equal(atomic_write_file(target, "target", 6, 0600), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(atomic_write_file(link, "via link", 8, 0600), 0);
    /* the link became a regular file; its old target is unchanged */
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    slurp(link, buf, sizeof(buf));
    assert_string_equal(buf, "via link");
    slurp(target, buf, sizeof(buf));
    assert_string_equal(buf, "target");
}

static void test_fifo_in_place(void **state)
{
    struct fixture *f = *state;
    static const char msg[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    char path[PATH_MAX], buf[256];
    struct stat st;
    size_t len = 0;
    ssize_t n;
    pid_t pid;
    int fd, status;

    path_in(f, "fifo", path);
    assert_int_equal(mkfifo(path, 0600), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the writer blocks in open until the parent opens the reading end */
        int rc = atomic_write_file(path, msg, sizeof(msg) - 1, 0600);
        _exit(rc == 0 ? 0 : 1);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(buf, msg);
    /* still the FIFO, not replaced by a file */
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_dev_null(void **state)
{
    struct stat st;

    assert_int_equal(atomic_write_file("/dev/null", "discard", 7, 0600), 0);
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_mode & 0666, 0666);
}

static void test_stdout(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX], buf[64];
    int fd, saved;

    path_in(f, "stdout.txt", path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    int rc = atomic_write_file("-", "to stdout\n", 10, 0600);
    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    close(fd);
    assert_int_equal(rc, 0);
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "to stdout\n");
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];

    assert_int_equal(atomic_write_file(NULL, "x", 1, 0600), -EINVAL);
    assert_int_equal(atomic_write_file("", "x", 1, 0600), -EINVAL);
    path_in(f, "x", path);
    assert_int_equal(atomic_write_file(path, NULL, 1, 0600), -EINVAL);
    assert_int_equal(atomic_write_file(f->dir, "x", 1, 0600), -EISDIR);
    path_in(f, "sub/", path);
    assert_int_equal(atomic_write_file(path, "x", 1, 0600), -EISDIR);
    assert_int_equal(count_entries(f->dir), 0);
}

static void test_missing_dir(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];

    path_in(f, "nope/key.pem", path);
    assert_int_equal(atomic_write_file(path, "x", 1, 0600), -ENOENT);
    assert_int_equal(count_entries(f->dir), 0);
}

static void test_unwritable_dir(void **state)
{
    struct fixture *f = *state;
    char sub[PATH_MAX], path[PATH_MAX + 16];

    if (geteuid() == 0)
        skip(); /* root writes anyway; test_write_failure covers a late failure as root */
    path_in(f, "ro", sub);
    assert_int_equal(mkdir(sub, 0500), 0);
    snprintf(path, sizeof(path), "%s/key.pem", sub);
    assert_int_equal(atomic_write_file(path, "x", 1, 0600), -EACCES);
    assert_int_equal(count_entries(sub), 0);
}

static void test_write_failure(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX], buf[64], big[4096];
    struct rlimit old, small;
    void (*old_handler)(int);
    int rc;

    path_in(f, "keep.pem", path);
    assert_int_equal(atomic_write_file(path, "original", 8, 0600), 0);

    /* RLIMIT_FSIZE makes the write into the temporary file fail with EFBIG, even for root */
    memset(big, 'x', sizeof(big));
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 100;
    old_handler = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    rc = atomic_write_file(path, big, sizeof(big), 0600);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, -EFBIG);
    assert_int_equal(slurp(path, buf, sizeof(buf)), 8);
    assert_string_equal(buf, "original");
    assert_int_equal(count_entries(f->dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
