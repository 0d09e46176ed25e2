/* JSON helpers the daemon and certctl share: RFC 3339 times, strings from untrusted bytes, and a
 * strict member checker for request bodies. */
#ifndef CERTD_COMMON_JSONUTIL_H
#define CERTD_COMMON_JSONUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SSZ" plus NUL fits with room to spare. */
#define JSON_TIME_SIZE 32

/*
 * Writes UNIX_SECONDS as an RFC 3339 UTC time without fraction ("2026-11-27T01:26:37Z") to OUT.
 * Returns 0, or -EOVERFLOW when the time falls outside years 0000..9999 (RFC 3339 §5.6 has
 * four-digit years), leaving OUT an empty string.
 */
int json_time_format(int64_t unix_seconds, char out[JSON_TIME_SIZE]);

/*
 * New reference to the RFC 3339 string of T, or to JSON null when T is 0 (the store's "not set")
 * or cannot be formatted. Returns NULL only on allocation failure.
 */
json_t *json_time_or_null(int64_t t);

/*
 * Parses an RFC 3339 date-time (§5.6): "YYYY-MM-DDTHH:MM:SS", an optional fraction (ignored,
 * i.e. truncated towards the earlier second), then "Z" or a numeric offset "+hh:mm"/"-hh:mm".
 * "T" and "Z" may be lower case (§5.6 NOTE). Day-of-month is checked against the month and leap
 * years; a leap second (:60) is accepted and lands on the following second. Nothing may follow.
 * Returns 0 with *OUT set, or -EINVAL (S NULL or not such a time; *OUT untouched).
 */
int json_time_parse(const char *s, int64_t *out);

/*
 * New reference to a JSON string holding S, where any octets that are not valid UTF-8 (which
 * json_string refuses) are replaced by U+FFFD. Use it for echoing untrusted input (names from
 * requests, server messages) into documents. S NULL gives "". Returns NULL only on allocation
 * failure.
 */
json_t *json_string_lossy(const char *s);

/* What a member of a request body must be. Null is never accepted for a typed member. */
enum json_field_type {
    JSON_FIELD_STRING,
    JSON_FIELD_INTEGER, /* a JSON integer (no fraction or exponent) */
    JSON_FIELD_NUMBER,  /* integer or real */
    JSON_FIELD_BOOLEAN,
    JSON_FIELD_OBJECT,
    JSON_FIELD_ARRAY,        /* elements unchecked */
    JSON_FIELD_STRING_ARRAY, /* an array whose every element is a string (may be empty) */
};

/* One member an endpoint accepts. */
struct json_field {
    const char *name;
    enum json_field_type type;
    bool required;
};

/*
 * Checks the members of OBJ against the N entries of SPEC, for strict request bodies (unknown
 * members are errors so typos never pass silently; see docs/api.md). Checks in this order:
 *   1. OBJ is not an object: -EINVAL, *BAD_FIELD = NULL, *UNKNOWN = false (answer "malformed").
 *   2. The first member of OBJ, in document order, that SPEC does not name: -EINVAL,
 *      *BAD_FIELD = that member's key (owned by OBJ, valid while OBJ is), *UNKNOWN = true
 *      (answer "unknown-field").
 *   3. The first SPEC entry, in SPEC order, that is required but absent or present with the
 *      wrong type: -EINVAL, *BAD_FIELD = its spec name, *UNKNOWN = false ("invalid-field").
 * On success returns 0 with *BAD_FIELD = NULL and *UNKNOWN = false. ERR (ERRSZ bytes, may be NULL
 * or 0) receives a one-line reason naming the field, e.g. "unknown field 'chalenge'" or "field
 * 'alt_names' must be an array of strings (element 1 is not a string)". BAD_FIELD and UNKNOWN may
 * be NULL. Duplicate keys must be refused when parsing (json_loads with JSON_REJECT_DUPLICATES):
 * an object cannot show them here.
 */
int json_check_fields(const json_t *obj, const struct json_field *spec, size_t n, char *err,
                      size_t errsz, const char **bad_field, bool *unknown);

#endif
