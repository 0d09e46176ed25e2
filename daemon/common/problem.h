/* RFC 9457 problem documents. Every error the API returns is one of these kinds, each with a
 * stable type URI (urn:certd:problem:<slug>) that clients may switch on. */
#ifndef CERTD_COMMON_PROBLEM_H
#define CERTD_COMMON_PROBLEM_H

#include <jansson.h>
#include <stddef.h>

enum problem_kind {
    PROBLEM_MALFORMED,          /* 400 body is not a JSON object, bad query parameter */
    PROBLEM_UNKNOWN_FIELD,      /* 400 body has a member the endpoint does not know */
    PROBLEM_INVALID_FIELD,      /* 400 member of the wrong type or with a bad value */
    PROBLEM_INVALID_NAME,       /* 400 a domain name fails validation */
    PROBLEM_UNAUTHORIZED,       /* 401 no or bad credentials (HTTPS listener) */
    PROBLEM_FORBIDDEN,          /* 403 the caller's role does not allow this */
    PROBLEM_NOT_FOUND,          /* 404 no such resource or path */
    PROBLEM_METHOD_NOT_ALLOWED, /* 405 with an Allow header */
    PROBLEM_NOT_ACCEPTABLE,     /* 406 */
    PROBLEM_CONFLICT,           /* 409 e.g. the domain exists already */
    PROBLEM_GONE,               /* 410 e.g. an events cursor older than what is kept */
    PROBLEM_PAYLOAD_TOO_LARGE,  /* 413 body over the limit */
    PROBLEM_UNSUPPORTED_MEDIA,  /* 415 body not application/json */
    PROBLEM_TOO_MANY_REQUESTS,  /* 429 */
    PROBLEM_INTERNAL,           /* 500 */
    PROBLEM_UNAVAILABLE,        /* 503 e.g. shutting down */
    PROBLEM_CA_ERROR,           /* 502 the ACME CA refused or failed */
    PROBLEM_KIND_COUNT
};

/* HTTP status of KIND. */
unsigned problem_status(enum problem_kind kind);
/* "malformed", "unknown-field", ... */
const char *problem_slug(enum problem_kind kind);
/* Short human title, e.g. "Malformed request". */
const char *problem_title(enum problem_kind kind);

/* The "urn:certd:problem:" prefix every type carries. */
#define PROBLEM_TYPE_PREFIX "urn:certd:problem:"

/*
 * New reference to {"type", "title", "status", "detail"} with DETAIL formatted printf-style (it
 * must never contain secrets). Callers may add extension members (e.g. "field", "name") with
 * json_object_set_new. Returns NULL only on allocation failure.
 */
json_t *problem_new(enum problem_kind kind, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * For certctl: writes a one-line description of a problem document (its detail, else its title,
 * else its type; plus subproblem details from ACME problems appended) to BUF.
 */
void problem_describe(const json_t *doc, char *buf, size_t bufsz);

#endif
