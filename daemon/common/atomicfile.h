/* Writing whole files so that readers see the old content or the new one, never a mix: used by
 * certctl to deliver certificates and private keys. */
#ifndef CERTD_COMMON_ATOMICFILE_H
#define CERTD_COMMON_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Writes LEN bytes of DATA to PATH:
 *  - "-": to standard output, in place.
 *  - PATH exists and (following symlinks) is not a regular file, e.g. a FIFO, /dev/stdout or a
 *    tty: opened O_WRONLY without O_CREAT or O_TRUNC and written in place; MODE is ignored and
 *    nothing is synced. Opening a FIFO blocks until it has a reader. A directory gives -EISDIR.
 *  - otherwise: a new file is created next to PATH (O_CREAT|O_EXCL, mode MODE from the start and
 *    fchmod'ed to exactly MODE despite the umask, so a key is never readable by others), written,
 *    fsync'ed, renamed over PATH, and the directory fsync'ed. Readers see the old or new file.
 *    If PATH is a symlink, the link itself is replaced by the new file (its old target is left
 *    alone): nothing is resolved, so a planted link cannot redirect where a key is written.
 *    An existing file's owner and mode are not kept; the new file has the caller's and MODE.
 * On failure before the rename the temporary file is removed and PATH is untouched. Returns 0 or
 * a negative errno; -EINVAL for bad arguments (PATH NULL or empty, DATA NULL with LEN > 0). A
 * failing directory fsync is reported although PATH already has the new content then.
 * Writing to a pipe whose reader has gone raises SIGPIPE unless the caller ignores it (then
 * -EPIPE).
 */
int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode);

/* Writes all LEN bytes of DATA to FD, retrying short writes and EINTR. Returns 0 or -errno. */
int fd_write_all(int fd, const void *data, size_t len);

#endif
