#include "common/problem.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/jsonutil.h"

/* Details are one line of our own text plus echoed names; longer ones are cut. */
#define DETAIL_MAX 1024
/* problem_describe lists at most this many ACME subproblems (RFC 8555 §6.7.1). */
#define SUBPROBLEMS_MAX 10

struct problem_info {
    unsigned status;
    const char *slug;
    const char *title;
};

static const struct problem_info problems[PROBLEM_KIND_COUNT] = {
    [PROBLEM_MALFORMED] = {400, "malformed", "Malformed request"},
    [PROBLEM_UNKNOWN_FIELD] = {400, "unknown-field", "Unknown field"},
    [PROBLEM_INVALID_FIELD] = {400, "invalid-field", "Invalid field"},
    [PROBLEM_INVALID_NAME] = {400, "invalid-name", "Invalid domain name"},
    [PROBLEM_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized"},
    [PROBLEM_FORBIDDEN] = {403, "forbidden", "Forbidden"},
    [PROBLEM_NOT_FOUND] = {404, "not-found", "Not found"},
    [PROBLEM_METHOD_NOT_ALLOWED] = {405, "method-not-allowed", "Method not allowed"},
    [PROBLEM_NOT_ACCEPTABLE] = {406, "not-acceptable", "Not acceptable"},
    [PROBLEM_CONFLICT] = {409, "conflict", "Conflict"},
    [PROBLEM_GONE] = {410, "gone", "Gone"},
    [PROBLEM_PAYLOAD_TOO_LARGE] = {413, "payload-too-large", "Payload too large"},
    [PROBLEM_UNSUPPORTED_MEDIA] = {415, "unsupported-media-type", "Unsupported media type"},
    [PROBLEM_TOO_MANY_REQUESTS] = {429, "too-many-requests", "Too many requests"},
    [PROBLEM_INTERNAL] = {500, "internal", "Internal error"},
    [PROBLEM_UNAVAILABLE] = {503, "unavailable", "Service unavailable"},
    [PROBLEM_CA_ERROR] = {502, "ca-error", "The ACME CA refused or failed"},
};

/* An out-of-range kind is a programming error; answering "internal" is the honest fallback. */
static const struct problem_info *info(enum problem_kind kind)
{
    return &problems[(unsigned)kind < PROBLEM_KIND_COUNT ? kind : PROBLEM_INTERNAL];
}

unsigned problem_status(enum problem_kind kind)
{
    return info(kind)->status;
}

const char *problem_slug(enum problem_kind kind)
{
    return info(kind)->slug;
}

const char *problem_title(enum problem_kind kind)
{
    return info(kind)->title;
}

json_t *problem_new(enum problem_kind kind, const char *detail_fmt, ...)
{
    const struct problem_info *pi = info(kind);
    char type[64], detail[DETAIL_MAX];
    json_t *doc;
    va_list ap;

    snprintf(type, sizeof(type), PROBLEM_TYPE_PREFIX "%s", pi->slug);
    doc = json_pack("{s:s, s:s, s:I}", "type", type, "title", pi->title, "status",
                    (json_int_t)pi->status);
    if (!doc || !detail_fmt)
        return doc;

    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof(detail), detail_fmt, ap);
    va_end(ap);
    /* Details echo client input, which need not be UTF-8; a cut may also split a sequence. */
    if (json_object_set_new(doc, "detail", json_string_lossy(detail)) < 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Appends S to BUF at *POS, with control characters (e.g. newlines from a server) turned into
 * spaces so the result stays one line. Never splits a UTF-8 sequence when cutting. */
static void append(char *buf, size_t bufsz, size_t *pos, const char *s)
{
    size_t p = *pos, n = strlen(s);

    if (p + 1 >= bufsz)
        return;
    if (n > bufsz - 1 - p) {
        n = bufsz - 1 - p;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[p++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    buf[p] = '\0';
    *pos = p;
}

/* The best one-line text of a problem object: detail, else title, else type, else NULL. */
static const char *problem_text(const json_t *doc)
{
    static const char *const members[] = {"detail", "title", "type"};

    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        const char *s = json_string_value(json_object_get(doc, members[i]));
        if (s && *s)
            return s;
    }
    return NULL;
}

void problem_describe(const json_t *doc, char *buf, size_t bufsz)
{
    const char *text = problem_text(doc);
    const json_t *subs = json_object_get(doc, "subproblems");
    size_t pos = 0, count;
    char status[48];

    if (!buf || bufsz == 0)
        return;
    buf[0] = '\0';
    if (text) {
        append(buf, bufsz, &pos, text);
    } else if (json_is_integer(json_object_get(doc, "status"))) {
        snprintf(status, sizeof(status), "error with status %" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(doc, "status")));
        append(buf, bufsz, &pos, status);
    } else {
        append(buf, bufsz, &pos, "unrecognised error response");
    }

    count = json_array_size(subs); /* 0 when not an array */
    for (size_t i = 0; i < count && i < SUBPROBLEMS_MAX; i++) {
        const json_t *sub = json_array_get(subs, i);
        const char *id =
            json_string_value(json_object_get(json_object_get(sub, "identifier"), "value"));
        const char *sub_text = problem_text(sub);

        if (!sub_text && !id)
            continue;
        append(buf, bufsz, &pos, "; ");
        if (id) {
            append(buf, bufsz, &pos, id);
            append(buf, bufsz, &pos, ": ");
        }
        append(buf, bufsz, &pos, sub_text ? sub_text : "error");
    }
    if (count > SUBPROBLEMS_MAX) {
        snprintf(status, sizeof(status), "; and %zu more", count - SUBPROBLEMS_MAX);
        append(buf, bufsz, &pos, status);
    }
}
