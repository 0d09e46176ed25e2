#include "common/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary name embeds the target's name, cut so ".NAME.XXXXXXXXXXXXXXXX.tmp" stays
 * within NAME_MAX. */
#define TMP_BASE_MAX 200
#define TMP_ATTEMPTS 16

int fd_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Writes into an existing non-regular file (FIFO, device). Returns 1 when PATH turned out to be
 * a regular file after all (replaced since the caller's stat), so the caller takes the
 * rename path instead of overwriting it in place without truncation.
 */
static int write_in_place(const char *path, const void *data, size_t len)
{
    struct stat st;
    int fd, rc;

    fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (S_ISREG(st.st_mode)) {
        rc = 1;
        goto out;
    }
    rc = fd_write_all(fd, data, len);
out:
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static uint64_t tmp_suffix(unsigned attempt)
{
    uint64_t r = 0;

    /* Unpredictability only avoids collisions; O_EXCL is what makes creation safe. */
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&r;
    return r + attempt;
}

static int fsync_dir(const char *dir)
{
    int fd, rc = 0;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Some file systems cannot sync directories; the rename is then as durable as it gets. */
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = -errno;
    close(fd);
    return rc;
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int fd = -1, rc, n;
    bool created = false;

    if (*base == '\0')
        return -EISDIR; /* "dir/" */
    if (!slash)
        n = snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        n = snprintf(dir, sizeof(dir), "/");
    else
        n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return -ENAMETOOLONG;

    for (unsigned attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
        n = snprintf(tmp, sizeof(tmp), "%s/.%.*s.%016llx.tmp", dir, TMP_BASE_MAX, base,
                     (unsigned long long)tmp_suffix(attempt));
        if (n < 0 || (size_t)n >= sizeof(tmp))
            return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    created = true;

    /* The umask may have taken bits away; the caller asked for exactly MODE. */
    if (fchmod(fd, mode & 07777) < 0) {
        rc = -errno;
        goto out;
    }
    rc = fd_write_all(fd, data, len);
    if (rc < 0)
        goto out;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    rc = close(fd);
    fd = -1;
    if (rc < 0) {
        rc = -errno;
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto out;
    }
    created = false;
    /* Make the rename itself survive a crash. */
    rc = fsync_dir(dir);
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    return rc;
}

int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    struct stat st;
    int rc;

    if (!path || !*path || (!data && len > 0))
        return -EINVAL;
    if (strcmp(path, "-") == 0)
        return fd_write_all(STDOUT_FILENO, data, len);

    /* stat, not lstat: "/dev/stdout" is a symlink to what must be written in place. */
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
            rc = write_in_place(path, data, len);
            if (rc <= 0)
                return rc;
        }
    } else if (errno != ENOENT) {
        return -errno;
    }
    return replace_file(path, data, len, mode);
}
