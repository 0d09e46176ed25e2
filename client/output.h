/* certctl's human output (aligned tables and "key: value" blocks) and --json output. Everything
 * printed for humans passes through a table, which replaces control characters: names, error
 * details and CA messages come from outside and must not drive the terminal. */
#ifndef CERTCTL_OUTPUT_H
#define CERTCTL_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

struct table;

/* Replaces, in place, C0 controls, DEL and the UTF-8 encodings of C1 controls (U+0080..U+009F)
 * with '?', so text from outside never carries a terminal escape sequence. */
void output_sanitize(char *s);

/*
 * A table of NCOLS columns. HEADERS (NCOLS strings) is printed as the first line; NULL makes a
 * headerless table, used for "key: value" blocks. Returns NULL on allocation failure.
 */
struct table *table_new(size_t ncols, const char *const *headers);
void table_free(struct table *t);

/* Appends a row of NCOLS cells, copied; a NULL cell prints as "-". Returns 0 or -ENOMEM. */
int table_add(struct table *t, const char *const *cells);

/* Convenience for two-column "key: value" tables. */
int table_kv(struct table *t, const char *key, const char *value);

/* Number of rows added so far (the header not counted). */
size_t table_rows(const struct table *t);

/* Prints T to OUT with each column as wide as its widest cell (in characters, counted as UTF-8
 * code points), two spaces between columns and no padding after the last. */
void table_print(const struct table *t, FILE *out);

/* Prints DOC to stdout, indented by two, member order kept, followed by a newline.
 * Returns 0, or -EIO when it could not be written. */
int output_json(const json_t *doc);

/*
 * Renders V for a human into BUF and returns BUF: strings as they are, integers and reals,
 * true/false, NULL or JSON null as "-", arrays and objects as compact JSON (cut to fit).
 */
const char *output_value(const json_t *v, char *buf, size_t bufsz);

enum time_style {
    TIME_LONG,    /* "2026-11-27 01:26 UTC": key/value blocks */
    TIME_SHORT,   /* "2026-11-27 01:26": table cells (tables say they are UTC) */
    TIME_SECONDS, /* "2026-11-27 01:26:37": the event log */
};

/*
 * Renders the RFC 3339 time string V in STYLE (always UTC, so output does not depend on the
 * local zone). NULL or null gives "-"; a string that does not parse is shown as it is.
 */
const char *output_time(const json_t *v, enum time_style style, char *buf, size_t bufsz);

/* Renders a duration in seconds as "3d 4h 5m 6s" (leading zero units left out). */
const char *output_duration(long long seconds, char *buf, size_t bufsz);

#endif
