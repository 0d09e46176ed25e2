/* The SQL migrations compiled into the binary (generated from schema/ at build time). */
#ifndef CERTD_STORE_SCHEMA_H
#define CERTD_STORE_SCHEMA_H

struct schema_migration {
    unsigned version;   /* the NNNN of NNNN_what.sql; equals its 1-based position */
    const char *file;   /* file name, for messages */
    const char *sql;    /* whole file, NUL-terminated */
};

extern const struct schema_migration schema_migrations[];
extern const unsigned schema_migration_count;

#endif
