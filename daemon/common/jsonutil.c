#include "common/jsonutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keys echoed in messages are cut here; bodies may be 64 KiB of one key. */
#define FIELD_ECHO_MAX 64

int json_time_format(int64_t unix_seconds, char out[JSON_TIME_SIZE])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    int n;

    out[0] = '\0';
    if ((int64_t)t != unix_seconds || !gmtime_r(&t, &tm))
        return -EOVERFLOW;
    /* tm_year counts from 1900; RFC 3339 has exactly four year digits. */
    if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return -EOVERFLOW;
    /* snprintf rather than strftime: %Y does not zero-pad years below 1000 in glibc. */
    n = snprintf(out, JSON_TIME_SIZE, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0 || n >= JSON_TIME_SIZE) {
        out[0] = '\0';
        return -EOVERFLOW;
    }
    return 0;
}

json_t *json_time_or_null(int64_t t)
{
    char buf[JSON_TIME_SIZE];

    if (t == 0 || json_time_format(t, buf) < 0)
        return json_null();
    return json_string(buf);
}

/* Reads exactly N ASCII digits at *P into *VAL and advances *P. */
static bool take_digits(const char **p, int n, int *val)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *val = v;
    return true;
}

static bool take_char(const char **p, char c1, char c2)
{
    if (**p != c1 && **p != c2)
        return false;
    (*p)++;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int json_time_parse(const char *s, int64_t *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, mon, day, hour, min, sec, off_h = 0, off_m = 0, sign = 0;
    const char *p = s;

    if (!s)
        return -EINVAL;
    /* RFC 3339 §5.6 full-date "T" partial-time */
    if (!take_digits(&p, 4, &year) || !take_char(&p, '-', '-') || !take_digits(&p, 2, &mon) ||
        !take_char(&p, '-', '-') || !take_digits(&p, 2, &day) || !take_char(&p, 'T', 't') ||
        !take_digits(&p, 2, &hour) || !take_char(&p, ':', ':') || !take_digits(&p, 2, &min) ||
        !take_char(&p, ':', ':') || !take_digits(&p, 2, &sec))
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    /* time-offset = "Z" / time-numoffset */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (!take_digits(&p, 2, &off_h) || !take_char(&p, ':', ':') || !take_digits(&p, 2, &off_m))
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;

    if (mon < 1 || mon > 12 || day < 1)
        return -EINVAL;
    if (day > mdays[mon - 1] + (mon == 2 && is_leap(year)))
        return -EINVAL;
    /* §5.7: seconds may be 60 at a leap second. */
    if (hour > 23 || min > 59 || sec > 60 || off_h > 23 || off_m > 59)
        return -EINVAL;

    int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    /* local = UTC + offset, so UTC = local - offset (§4.2). */
    t -= (int64_t)sign * (off_h * 3600 + off_m * 60);
    *out = t;
    return 0;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629 §4) starting at P with N octets left, or
 * 0 when it is not one. Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    }
    return len;
}

json_t *json_string_lossy(const char *s)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    json_t *j;
    char *buf;
    size_t len, o = 0;

    if (!s)
        return json_string("");
    j = json_string(s);
    if (j)
        return j;

    len = strlen(s);
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n == 0) {
            memcpy(buf + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, n);
            o += n;
            i += n;
        }
    }
    buf[o] = '\0';
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

static bool field_type_ok(const json_t *v, enum json_field_type type, size_t *bad_elem)
{
    switch (type) {
    case JSON_FIELD_STRING:
        return json_is_string(v);
    case JSON_FIELD_INTEGER:
        return json_is_integer(v);
    case JSON_FIELD_NUMBER:
        return json_is_number(v);
    case JSON_FIELD_BOOLEAN:
        return json_is_boolean(v);
    case JSON_FIELD_OBJECT:
        return json_is_object(v);
    case JSON_FIELD_ARRAY:
        return json_is_array(v);
    case JSON_FIELD_STRING_ARRAY:
        if (!json_is_array(v))
            return false;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!json_is_string(json_array_get(v, i))) {
                *bad_elem = i;
                return false;
            }
        }
        return true;
    }
    return false;
}

static const char *field_type_wanted(enum json_field_type type)
{
    switch (type) {
    case JSON_FIELD_STRING:
        return "a string";
    case JSON_FIELD_INTEGER:
        return "an integer";
    case JSON_FIELD_NUMBER:
        return "a number";
    case JSON_FIELD_BOOLEAN:
        return "true or false";
    case JSON_FIELD_OBJECT:
        return "an object";
    case JSON_FIELD_ARRAY:
        return "an array";
    case JSON_FIELD_STRING_ARRAY:
        return "an array of strings";
    }
    return "of another type";
}

/* Length of at most MAX octets of S that does not end inside a UTF-8 sequence. */
static int echo_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    return (int)n;
}

int json_check_fields(const json_t *obj, const struct json_field *spec, size_t n, char *err,
                      size_t errsz, const char **bad_field, bool *unknown)
{
    const json_t *val;
    const char *dummy_field;
    bool dummy_unknown;
    char dummy_err[1];

    /* Let the body of the function write unconditionally. */
    if (!bad_field)
        bad_field = &dummy_field;
    if (!unknown)
        unknown = &dummy_unknown;
    if (!err || errsz == 0) {
        err = dummy_err;
        errsz = sizeof(dummy_err);
    }
    *bad_field = NULL;
    *unknown = false;
    err[0] = '\0';

    if (!json_is_object(obj)) {
        snprintf(err, errsz, "request body must be a JSON object");
        return -EINVAL;
    }

    /* Jansson iterates in insertion order, i.e. document order. The iterator API wants a
     * non-const object but only reads it. */
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t i;
        for (i = 0; i < n; i++) {
            if (strcmp(key, spec[i].name) == 0)
                break;
        }
        if (i == n) {
            int klen = echo_len(key, FIELD_ECHO_MAX);
            snprintf(err, errsz, "unknown field '%.*s%s'", klen, key, key[klen] ? "..." : "");
            *bad_field = key;
            *unknown = true;
            return -EINVAL;
        }
    }

    for (size_t i = 0; i < n; i++) {
        size_t bad_elem = SIZE_MAX;

        val = json_object_get(obj, spec[i].name);
        if (!val) {
            if (!spec[i].required)
                continue;
            snprintf(err, errsz, "field '%s' is required", spec[i].name);
            *bad_field = spec[i].name;
            return -EINVAL;
        }
        if (field_type_ok(val, spec[i].type, &bad_elem))
            continue;
        if (bad_elem != SIZE_MAX)
            snprintf(err, errsz, "field '%s' must be %s (element %zu is not a string)",
                     spec[i].name, field_type_wanted(spec[i].type), bad_elem);
        else
            snprintf(err, errsz, "field '%s' must be %s", spec[i].name,
                     field_type_wanted(spec[i].type));
        *bad_field = spec[i].name;
        return -EINVAL;
    }
    return 0;
}
