#include "common/names.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 1035 §2.3.4 limits, in presentation form without the root dot. */
#define NAME_LEN_MAX 253
#define LABEL_LEN_MAX 63
/* Untrusted input is cut off here before any work: each code point becomes at least one octet of
 * A-label, and UTF-8 spends at most four octets per code point, so a longer input can never
 * yield a name of 253 octets. */
#define NAME_INPUT_MAX (4 * NAME_LEN_MAX)
/* Labels quoted in messages are cut here so a reason always fits NAME_ERR_SIZE. */
#define LABEL_ECHO_MAX 64

/* IDNA2008 proper: without this flag GnuTLS falls back to IDNA2003 (transitional) mapping for
 * names IDNA2008 disallows, e.g. emoji. */
#define IDNA_FLAGS GNUTLS_IDNA_FORCE_2008

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, NAME_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Copies LEN octets of S into BUF for quoting in a message: cut at a UTF-8 boundary with "..."
 * when longer than LABEL_ECHO_MAX. S must not contain control characters (checked first). */
static const char *echo(char buf[LABEL_ECHO_MAX + 4], const char *s, size_t len)
{
    size_t n = len;

    if (n > LABEL_ECHO_MAX) {
        n = LABEL_ECHO_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(buf, s, n);
    if (n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static bool is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Octets in the UTF-8 sequence led by C (input already known to be valid UTF-8). */
static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

static uint32_t utf8_decode(const unsigned char *p, size_t n)
{
    static const unsigned char lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = p[0] & lead_mask[n];

    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    return cp;
}

/* One gnutls_idna_map call; returns its result and, on success, the A-label form in *OUT
 * (gnutls_free it). */
static int idna_map(const char *s, size_t len, gnutls_datum_t *out)
{
    out->data = NULL;
    out->size = 0;
    return gnutls_idna_map(s, (unsigned)len, out, IDNA_FLAGS);
}

/*
 * RFC 5891 §5.4: an "xn--" label must decode to a valid U-label that encodes back to the same
 * A-label; anything else (bad punycode, disallowed code points) is refused rather than passed to
 * a CA that would refuse it later.
 */
static bool alabel_valid(const char *label, size_t len)
{
    gnutls_datum_t u = {NULL, 0}, a;
    bool ok = false;

    if (gnutls_idna_reverse_map(label, (unsigned)len, &u, 0) < 0)
        goto out;
    if (idna_map((const char *)u.data, u.size, &a) < 0)
        goto out;
    ok = a.size == len && memcmp(a.data, label, len) == 0;
    gnutls_free(a.data);
out:
    gnutls_free(u.data);
    return ok;
}

/* Validates one lower-case ASCII label L of N octets against the LDH rules (RFC 5890 §2.3.1). */
static int check_label(const char *l, size_t n, char *err)
{
    char q[LABEL_ECHO_MAX + 4];

    if (n == 0)
        return fail(err, "empty label");
    if (n > LABEL_LEN_MAX)
        return fail(err, "label '%s' is longer than %d octets", echo(q, l, n), LABEL_LEN_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        if (is_ldh(c))
            continue;
        if (c > 0x20 && c < 0x7f)
            return fail(err, "label '%s' contains invalid character '%c'", echo(q, l, n), c);
        return fail(err, "label '%s' contains invalid character 0x%02x", echo(q, l, n), c);
    }
    if (l[0] == '-')
        return fail(err, "label '%s' starts with a hyphen", echo(q, l, n));
    if (l[n - 1] == '-')
        return fail(err, "label '%s' ends with a hyphen", echo(q, l, n));
    /* RFC 5891 §4.2.3.1: "??--" labels are reserved; only "xn--" (A-labels) exist. */
    if (n >= 4 && l[2] == '-' && l[3] == '-') {
        if (l[0] != 'x' || l[1] != 'n')
            return fail(err,
                        "label '%s' has hyphens in the third and fourth positions, which "
                        "only A-labels ('xn--') may have",
                        echo(q, l, n));
        if (!alabel_valid(l, n))
            return fail(err, "label '%s' is not a valid A-label (punycode)", echo(q, l, n));
    }
    return 0;
}

/*
 * GnuTLS (libidn2 with STD3 rules) silently drops characters whose mapping is not LDH ASCII, such
 * as U+00A0 or U+FF3F, and UTS #46 ignores invisible ones such as U+00AD: "a\u00a0b" would become
 * "ab", a different name than the user wrote. A code point that maps to nothing on its own is one
 * of those, so refuse it rather than let the name change under the user.
 */
static int check_vanishing(const char *s, size_t len, char *err)
{
    size_t label_start = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = utf8_len(c);
        gnutls_datum_t d;

        if (c == '.')
            label_start = i + 1;
        if (n > 1 && idna_map(s + i, n, &d) == 0) {
            bool empty = d.size == 0;
            gnutls_free(d.data);
            if (empty) {
                char q[LABEL_ECHO_MAX + 4];
                size_t end = i;
                while (end < len && s[end] != '.')
                    end++;
                return fail(err,
                            "label '%s' contains U+%04X, which is invisible or not allowed "
                            "in host names",
                            echo(q, s + label_start, end - label_start),
                            (unsigned)utf8_decode((const unsigned char *)s + i, n));
            }
        }
        i += n;
    }
    return 0;
}

/*
 * Says why gnutls_idna_map refused the name S (LEN octets): it reports only "invalid UTF-8", so
 * check each label alone, then the length of the result.
 */
static int diagnose(const char *s, size_t len, char *err)
{
    char q[LABEL_ECHO_MAX + 4], lower[LABEL_LEN_MAX + 1];
    size_t total = 0;
    int rc;

    for (size_t start = 0; start < len;) {
        const char *l = s + start;
        size_t n = 0;
        bool ascii = true;
        gnutls_datum_t d;

        while (start + n < len && l[n] != '.') {
            ascii = ascii && !((unsigned char)l[n] & 0x80);
            n++;
        }
        if (ascii) {
            if (n > LABEL_LEN_MAX)
                return fail(err, "label '%s' is longer than %d octets", echo(q, l, n),
                            LABEL_LEN_MAX);
            for (size_t i = 0; i < n; i++)
                lower[i] = (l[i] >= 'A' && l[i] <= 'Z') ? (char)(l[i] - 'A' + 'a') : l[i];
            rc = check_label(lower, n, err);
            if (rc < 0)
                return rc;
            total += n + 1;
        } else {
            size_t code_points = 0, mapped_len;

            rc = idna_map(l, n, &d);
            mapped_len = d.size;
            gnutls_free(d.data);
            for (size_t i = 0; i < n; i++)
                code_points += ((unsigned char)l[i] & 0xc0) != 0x80;
            /* An A-label is "xn--" plus at least one octet per code point (RFC 3492 §6.3);
             * GnuTLS does not tell "too long" from other errors, so estimate it. */
            if (rc < 0 && code_points + 4 > LABEL_LEN_MAX)
                return fail(err, "label '%s' is longer than %d octets in A-label form",
                            echo(q, l, n), LABEL_LEN_MAX);
            if (rc < 0)
                return fail(err,
                            "label '%s' is not a valid internationalised label "
                            "(IDNA2008, RFC 5892)",
                            echo(q, l, n));
            if (mapped_len > LABEL_LEN_MAX)
                return fail(err, "label '%s' is longer than %d octets in A-label form",
                            echo(q, l, n), LABEL_LEN_MAX);
            total += mapped_len + 1;
        }
        start += n + 1;
    }
    if (total > NAME_LEN_MAX + 1)
        return fail(err, "name is longer than %d octets in A-label form", NAME_LEN_MAX);
    /* e.g. the Bidi rule (RFC 5893 §2), which looks across labels */
    return fail(err, "name is not a valid internationalised domain name (IDNA2008)");
}

/*
 * Maps the Unicode name S (LEN octets, no wildcard label, no trailing dot, valid UTF-8) to its
 * A-label form in OUT (NAME_BUF_SIZE). The whole name is mapped at once because IDNA2008's Bidi
 * rule (RFC 5893 §2) looks across labels.
 */
static int map_unicode(const char *s, size_t len, char *out, char *err)
{
    gnutls_datum_t d;
    int rc;

    rc = check_vanishing(s, len, err);
    if (rc < 0)
        return rc;

    if (idna_map(s, len, &d) < 0)
        return diagnose(s, len, err);
    if (d.size > NAME_LEN_MAX || memchr(d.data, '\0', d.size)) {
        gnutls_free(d.data);
        return fail(err, "name is longer than %d octets in A-label form", NAME_LEN_MAX);
    }
    memcpy(out, d.data, d.size);
    out[d.size] = '\0';
    gnutls_free(d.data);
    return 0;
}

/* Validates the lower-case ASCII NAME (wildcard label already removed). */
static int check_ldh(const char *name, bool wildcard, char *err)
{
    size_t len = strlen(name), labels = 0, start = 0, last_start = 0;
    size_t max = wildcard ? NAME_LEN_MAX - 2 : NAME_LEN_MAX;
    char q[LABEL_ECHO_MAX + 4];
    int rc;

    if (len > max)
        return fail(err, "name is longer than %d octets", NAME_LEN_MAX);
    while (start <= len) {
        size_t n = strcspn(name + start, ".");

        rc = check_label(name + start, n, err);
        if (rc < 0)
            return rc;
        labels++;
        last_start = start;
        start += n + 1;
    }
    if (labels < 2)
        return fail(err, wildcard ? "a wildcard needs a name of at least two labels after '*.'"
                                  : "a name needs at least two labels");
    if (strspn(name + last_start, "0123456789") == len - last_start)
        return fail(err, "top-level label '%s' is all-numeric (IP addresses are not names)",
                    echo(q, name + last_start, len - last_start));
    return 0;
}

/*
 * First pass over the raw input: whole-name problems, the wildcard label, and ASCII characters
 * that are not LDH. The latter must be caught here, before mapping, because GnuTLS drops them
 * silently ("a_b.b\u00fc.de" maps to "ab.xn--b-eha.de").
 */
static int check_raw(const char *in, size_t len, bool allow_wildcard, bool *wildcard, bool *unicode,
                     char *err)
{
    char q[LABEL_ECHO_MAX + 4];

    *wildcard = false;
    *unicode = false;
    for (size_t start = 0, idx = 0; start <= len; idx++) {
        const char *l = in + start;
        size_t n = 0;

        while (start + n < len && l[n] != '.')
            n++;
        if (n == 0)
            return fail(err, idx == 0 ? "name starts with a dot" : "empty label");
        if (memchr(l, '*', n)) {
            /* RFC 8555 §7.1.3: the wildcard is the whole leftmost label. */
            if (n != 1)
                return fail(err,
                            "label '%s' contains '*'; a wildcard must be the whole first "
                            "label",
                            echo(q, l, n));
            if (idx != 0)
                return fail(err, "'*' is only allowed as the whole first label");
            if (!allow_wildcard)
                return fail(err, "wildcard names are not allowed here");
            if (n == len)
                return fail(err, "'*' alone is not a name");
            *wildcard = true;
        } else {
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)l[i];
                if (c & 0x80)
                    *unicode = true;
                else if (!is_ldh(c))
                    return fail(err, "label '%s' contains invalid character '%c'", echo(q, l, n),
                                c);
            }
            /* RFC 5891 §4.2.3.1, checked here too so Unicode labels get this message */
            if (l[0] == '-')
                return fail(err, "label '%s' starts with a hyphen", echo(q, l, n));
            if (l[n - 1] == '-')
                return fail(err, "label '%s' ends with a hyphen", echo(q, l, n));
        }
        start += n + 1;
    }
    return 0;
}

int name_normalize(const char *in, bool allow_wildcard, char out[NAME_BUF_SIZE],
                   char err[NAME_ERR_SIZE])
{
    char mapped[NAME_BUF_SIZE];
    bool wildcard, unicode;
    size_t len;
    json_t *utf8_probe;
    int rc;

    if (err)
        err[0] = '\0';
    out[0] = '\0';
    if (!in || !*in)
        return fail(err, "empty name");
    len = strnlen(in, NAME_INPUT_MAX + 1);
    if (len > NAME_INPUT_MAX)
        return fail(err, "name is longer than %d octets", NAME_LEN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || (c >= '\t' && c <= '\r'))
            return fail(err, "name contains whitespace");
        if (c < 0x20 || c == 0x7f)
            return fail(err, "name contains control character 0x%02x", c);
    }
    /* jansson's UTF-8 check (it refuses overlong forms and surrogates) */
    utf8_probe = json_stringn(in, len);
    if (!utf8_probe)
        return fail(err, "name is not valid UTF-8");
    json_decref(utf8_probe);

    /* One trailing dot names the DNS root (RFC 1034 §3.1); certificates never carry it. */
    if (in[len - 1] == '.')
        len--;
    if (len == 0)
        return fail(err, "empty name");

    rc = check_raw(in, len, allow_wildcard, &wildcard, &unicode, err);
    if (rc < 0)
        return rc;
    if (wildcard) {
        in += 2;
        len -= 2;
    }

    if (unicode) {
        rc = map_unicode(in, len, mapped, err);
        if (rc < 0)
            return rc;
    } else {
        if (len > NAME_LEN_MAX)
            return fail(err, "name is longer than %d octets", NAME_LEN_MAX);
        memcpy(mapped, in, len);
        mapped[len] = '\0';
    }
    for (char *p = mapped; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }

    rc = check_ldh(mapped, wildcard, err);
    if (rc < 0)
        return rc;
    snprintf(out, NAME_BUF_SIZE, "%s%s", wildcard ? "*." : "", mapped);
    return 0;
}

bool name_is_wildcard(const char *name)
{
    return name && name[0] == '*' && name[1] == '.';
}

bool name_wildcard_matches(const char *pattern, const char *host)
{
    size_t plen, hlen, prefix;

    if (!pattern || !host)
        return false;
    if (strcasecmp(pattern, host) == 0)
        return true;
    if (!name_is_wildcard(pattern))
        return false;
    /* RFC 6125 §6.4.3: "*" stands for exactly one whole leftmost label. */
    plen = strlen(pattern + 1); /* ".example.com" */
    hlen = strlen(host);
    if (hlen <= plen || strcasecmp(host + hlen - plen, pattern + 1) != 0)
        return false;
    prefix = hlen - plen;
    return memchr(host, '.', prefix) == NULL;
}

int names_check_set(const char *const *names, size_t count, enum challenge_type challenge,
                    char err[NAME_ERR_SIZE])
{
    if (err)
        err[0] = '\0';
    if (!names || count == 0)
        return fail(err, "no names given");
    if (count > NAMES_MAX)
        return fail(err, "too many names: %zu (at most %d)", count, NAMES_MAX);
    for (size_t i = 0; i < count; i++) {
        if (!names[i] || !names[i][0])
            return fail(err, "name %zu is empty", i + 1);
        /* RFC 8555 §8.4: only dns-01 can prove control of a whole zone, as a wildcard needs. */
        if (name_is_wildcard(names[i]) && challenge != CHALLENGE_DNS_01)
            return fail(err, "wildcard name '%.*s' needs the dns-01 challenge, not %s",
                        NAME_BUF_SIZE, names[i], challenge_type_name(challenge));
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(names[i], names[j]) == 0)
                return fail(err, "name '%.*s' is listed more than once", NAME_BUF_SIZE, names[i]);
        }
    }
    return 0;
}
