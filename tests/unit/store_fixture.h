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

/* The directory and the database's path only, for a test that opens the store itself (st stays
 * NULL until it does). */
static inline int store_fixture_setup_dir(void **state)
{
    struct store_fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("CERTD_TEST_TMPDIR");
    if (!f)
        return -1;
    if (!base)
        base = "/tmp";
    mkdir(base, 0700); /* ctest names it but nothing creates it */
    snprintf(f->dir, sizeof(f->dir), "%s/store-test-XXXXXX", base);
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/certd.db", f->dir);
    *state = f;
    return 0;
}

static inline int store_fixture_setup(void **state)
{
    char err[256];
    if (store_fixture_setup_dir(state) != 0)
        return -1;
    struct store_fixture *f = *state;
    if (store_open(f->db, &f->st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        rmdir(f->dir);
        free(f);
        return -1;
    }
    return 0;
}

/* Removes the database file DB and the files SQLite keeps beside it. */
static inline void store_fixture_rm_db(const char *db)
{
    char p[PATH_MAX + 64];
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", db, sfx[i]);
        unlink(p);
    }
}

static inline int store_fixture_teardown(void **state)
{
    struct store_fixture *f = *state;
    store_close(f->st);
    store_fixture_rm_db(f->db);
    rmdir(f->dir);
    free(f);
    return 0;
}

#endif
