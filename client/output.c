#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/jsonutil.h"

struct table {
    size_t ncols;
    bool has_header;
    size_t nrows; /* including the header row when there is one */
    size_t cap;
    char **cells; /* nrows * ncols, row-major */
};

void output_sanitize(char *s)
{
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        unsigned char next = (unsigned char)s[i + 1];
        if (ch == 0xc2 && next >= 0x80 && next <= 0x9f) {
            s[j++] = '?';
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            s[j++] = '?';
        } else {
            s[j++] = (char)ch;
        }
    }
    s[j] = '\0';
}

static char *sanitize(const char *s)
{
    char *out = strdup(s);
    if (out)
        output_sanitize(out);
    return out;
}

/* Display width in characters: UTF-8 continuation bytes do not count. Wide (CJK) characters
 * will misalign a column by one; names are A-labels, so that is rare enough. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    }
    return w;
}

static int add_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->cells = p;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t c = 0; c < t->ncols; c++) {
        row[c] = sanitize(cells[c] ? cells[c] : "-");
        if (!row[c]) {
            while (c-- > 0)
                free(row[c]);
            return -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

struct table *table_new(size_t ncols, const char *const *headers)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ncols = ncols;
    if (headers) {
        if (add_row(t, headers) < 0) {
            table_free(t);
            return NULL;
        }
        t->has_header = true;
    }
    return t;
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int table_add(struct table *t, const char *const *cells)
{
    return add_row(t, cells);
}

int table_kv(struct table *t, const char *key, const char *value)
{
    char label[128];
    snprintf(label, sizeof(label), "%s:", key);
    const char *cells[2] = {label, value};
    return add_row(t, cells);
}

size_t table_rows(const struct table *t)
{
    return t->nrows - (t->has_header ? 1 : 0);
}

void table_print(const struct table *t, FILE *out)
{
    size_t *widths = calloc(t->ncols ? t->ncols : 1, sizeof(*widths));
    if (!widths) {
        /* Unaligned is better than nothing. */
        for (size_t r = 0; r < t->nrows; r++) {
            for (size_t c = 0; c < t->ncols; c++)
                fprintf(out, "%s%s", c ? "  " : "", t->cells[r * t->ncols + c]);
            fputc('\n', out);
        }
        return;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            fputs(cell, out);
            if (c + 1 < t->ncols) {
                for (size_t pad = text_width(cell); pad < widths[c] + 2; pad++)
                    fputc(' ', out);
            }
        }
        fputc('\n', out);
    }
    free(widths);
}

int output_json(const json_t *doc)
{
    /* Jansson keeps object members in insertion order, i.e. the order the API sent them. */
    if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
        return -EIO;
    if (fputc('\n', stdout) == EOF)
        return -EIO;
    return 0;
}

const char *output_value(const json_t *v, char *buf, size_t bufsz)
{
    if (bufsz == 0)
        return "";
    buf[0] = '\0';
    if (!v || json_is_null(v)) {
        snprintf(buf, bufsz, "-");
    } else if (json_is_string(v)) {
        snprintf(buf, bufsz, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, bufsz, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, bufsz, "%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, bufsz, "%s", json_is_true(v) ? "true" : "false");
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        snprintf(buf, bufsz, "%s", s ? s : "?");
        free(s);
    }
    return buf;
}

const char *output_time(const json_t *v, enum time_style style, char *buf, size_t bufsz)
{
    if (!v || !json_is_string(v))
        return output_value(v, buf, bufsz);

    int64_t secs;
    struct tm tm;
    if (json_time_parse(json_string_value(v), &secs) < 0)
        return output_value(v, buf, bufsz);
    time_t t = (time_t)secs;
    if (!gmtime_r(&t, &tm))
        return output_value(v, buf, bufsz);

    size_t n = 0;
    switch (style) {
    case TIME_LONG:
        n = strftime(buf, bufsz, "%Y-%m-%d %H:%M UTC", &tm);
        break;
    case TIME_SHORT:
        n = strftime(buf, bufsz, "%Y-%m-%d %H:%M", &tm);
        break;
    case TIME_SECONDS:
        n = strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S", &tm);
        break;
    }
    if (n == 0)
        return output_value(v, buf, bufsz);
    return buf;
}

const char *output_duration(long long seconds, char *buf, size_t bufsz)
{
    if (seconds < 0)
        seconds = 0;
    long long d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60,
              s = seconds % 60;
    if (d > 0)
        snprintf(buf, bufsz, "%lldd %lldh %lldm %llds", d, h, m, s);
    else if (h > 0)
        snprintf(buf, bufsz, "%lldh %lldm %llds", h, m, s);
    else if (m > 0)
        snprintf(buf, bufsz, "%lldm %llds", m, s);
    else
        snprintf(buf, bufsz, "%llds", s);
    return buf;
}
