/* A fresh store in a temporary directory for one test, removed afterwards. Include from a test
 * file and use store_fixture_setup / store_fixture_teardown as cmocka's setup and teardown;
 * the state is a struct store_fixture. */
#ifndef CERTD_TEST_STORE_FIXTURE_H
#define CERTD_TEST_STORE_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

struct store_fixture {
    char dir[PATH_MAX];
    char db[PATH_MAX + 16];
    struct store *st;
};

static inline int store_fixture_setup(void **state)
{
    struct store_fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char err[256];
    if (!f)
        return -1;
    if (!base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/store-test-XXXXXX", base);
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/certd.db", f->dir);
    if (store_open(f->db, &f->st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int store_fixture_teardown(void **state)
{
    struct store_fixture *f = *state;
    char p[PATH_MAX + 64];
    store_close(f->st);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->db, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

#endif
