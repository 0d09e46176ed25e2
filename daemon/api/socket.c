#include "api/api.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int resolve_group(const char *group, gid_t *gid)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(group, &end, 10);
    if (*group && !*end && errno == 0 && n < (gid_t)-1) {
        *gid = (gid_t)n;
        return 0;
    }
    char buf[4096];
    struct group gr, *res = NULL;
    int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
    if (rc != 0 || !res)
        return -ENOENT;
    *gid = res->gr_gid;
    return 0;
}

int api_socket_bind(const char *path, mode_t mode, const char *group, char *err, size_t errsz)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = -1, rc;
    gid_t gid = (gid_t)-1;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, errsz, "socket path %s is too long (max %zu bytes)", path,
                 sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);

    if (group && resolve_group(group, &gid) < 0) {
        snprintf(err, errsz, "socket_group %s: no such group", group);
        return -ENOENT;
    }

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errsz, "%s exists and is not a socket; refusing to replace it", path);
            return -EEXIST;
        }
        /* Left by a certd that did not shut down cleanly: we hold the state lock, so nobody
         * serves it. */
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = -errno;
            snprintf(err, errsz, "cannot remove stale socket %s: %s", path, strerror(errno));
            return rc;
        }
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errsz, "socket: %s", strerror(errno));
        return rc;
    }

    /* bind() creates the file with 0777 & ~umask: tighten the umask first so no caller can
     * connect in the window before chmod. Only owner access until then. */
    mode_t old_umask = umask(0177);
    rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    int bind_errno = errno;
    umask(old_umask);
    if (rc < 0) {
        rc = -bind_errno;
        snprintf(err, errsz, "bind %s: %s", path, strerror(bind_errno));
        goto fail;
    }
    if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
        rc = -errno;
        snprintf(err, errsz, "chown %s to group %s: %s", path, group, strerror(errno));
        goto fail_unlink;
    }
    if (chmod(path, mode) < 0) {
        rc = -errno;
        snprintf(err, errsz, "chmod %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, 128) < 0) {
        rc = -errno;
        snprintf(err, errsz, "listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(path);
fail:
    close(fd);
    return rc;
}
