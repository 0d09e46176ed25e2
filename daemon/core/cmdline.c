/*
 * ExecStart=-style command-line splitting (systemd.service(5) "COMMAND LINES", quoting rules of
 * systemd.syntax(7) "QUOTING"), without the parts that need a unit: no specifiers, no $VAR
 * expansion (a '$' is an ordinary character), no ';' command separator, no '-@:+!' prefixes.
 *
 * Like systemd's extract_first_word(EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE):
 *  - unquoted whitespace separates words and runs of it are one separator;
 *  - '...' and "..." group and may start or end inside a word: a"b c"d is the one word "ab cd",
 *    and "" on its own is an empty word;
 *  - backslash escapes are decoded outside and inside both kinds of quotes;
 *  - an escape outside the systemd table is an error. (systemd itself retries with RELAX, keeps
 *    the backslash and warns; we have no warning channel at load time and a silently different
 *    argv is worse than a refused config line, so we refuse.)
 */
#include "core/cmdline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMDLINE_MAX_LEN (64 * 1024)
#define CMDLINE_MAX_WORDS 256

static void set_err(char *err, size_t errsz, const char *msg)
{
    if (err && errsz)
        snprintf(err, errsz, "%s", msg);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* UTF-8 encoding of a Unicode scalar value (surrogates and > U+10FFFF already refused). */
static size_t utf8_put(uint32_t u, char *out)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xc0 | (u >> 6));
        out[1] = (char)(0x80 | (u & 0x3f));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xe0 | (u >> 12));
        out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
        out[2] = (char)(0x80 | (u & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (u >> 18));
    out[1] = (char)(0x80 | ((u >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((u >> 6) & 0x3f));
    out[3] = (char)(0x80 | (u & 0x3f));
    return 4;
}

/*
 * Decodes the escape whose first character (after the backslash) is at P. Writes at most 4 bytes
 * to OUT and their count to *OUT_LEN; returns how many input characters it consumed, or 0 for an
 * unknown or malformed escape. NUL is refused in every form since it cannot be in an argv string.
 */
static size_t unescape_one(const char *p, char *out, size_t *out_len, const char **why)
{
    static const char simple_in[] = "abfnrtv\\\"'s";
    static const char simple_out[] = "\a\b\f\n\r\t\v\\\"' ";
    const char *hit = *p ? strchr(simple_in, *p) : NULL;

    if (hit) {
        out[0] = simple_out[hit - simple_in];
        *out_len = 1;
        return 1;
    }
    if (*p == 'x') {
        /* \xHH: exactly two hex digits, one raw byte */
        int a = hexval(p[1]), b = a < 0 ? -1 : hexval(p[2]);
        if (a < 0 || b < 0) {
            *why = "\\x needs two hex digits";
            return 0;
        }
        if (a == 0 && b == 0) {
            *why = "escaped NUL byte";
            return 0;
        }
        out[0] = (char)(a << 4 | b);
        *out_len = 1;
        return 3;
    }
    if (*p >= '0' && *p <= '7') {
        /* \NNN: exactly three octal digits, one raw byte <= 0377 */
        if (p[1] < '0' || p[1] > '7' || p[2] < '0' || p[2] > '7') {
            *why = "octal escape needs three digits";
            return 0;
        }
        unsigned v =
            (unsigned)(p[0] - '0') << 6 | (unsigned)(p[1] - '0') << 3 | (unsigned)(p[2] - '0');
        if (v == 0 || v > 0377) {
            *why = v == 0 ? "escaped NUL byte" : "octal escape above \\377";
            return 0;
        }
        out[0] = (char)v;
        *out_len = 1;
        return 3;
    }
    if (*p == 'u' || *p == 'U') {
        /* \uXXXX or \UXXXXXXXX: a Unicode code point, written as UTF-8 */
        size_t n = *p == 'u' ? 4 : 8;
        uint32_t u = 0;
        for (size_t i = 1; i <= n; i++) {
            int h = hexval(p[i]);
            if (h < 0) {
                *why = *p == 'u' ? "\\u needs four hex digits" : "\\U needs eight hex digits";
                return 0;
            }
            u = u << 4 | (uint32_t)h;
        }
        if (u == 0 || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            *why = "escape is not a valid Unicode character";
            return 0;
        }
        *out_len = utf8_put(u, out);
        return n + 1;
    }
    *why = "unknown escape sequence (write \\\\ for a backslash)";
    return 0;
}

void cmdline_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

static bool is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cmdline_split(const char *line, char ***argv_out, size_t *argc_out, char *err, size_t errsz)
{
    char **argv = NULL;
    size_t argc = 0;
    char *word = NULL;
    int r = -EINVAL;

    *argv_out = NULL;
    *argc_out = 0;
    set_err(err, errsz, "");

    if (!line) {
        set_err(err, errsz, "empty command");
        return -EINVAL;
    }
    size_t len = strnlen(line, CMDLINE_MAX_LEN + 1);
    if (len > CMDLINE_MAX_LEN) {
        set_err(err, errsz, "command line longer than 65536 bytes");
        return -EINVAL;
    }
    /* One slot more than the word cap plus the NULL terminator; a word is never longer than the
     * line (escapes only shrink), so LEN + 1 bytes always suffice for it. */
    argv = calloc(CMDLINE_MAX_WORDS + 1, sizeof(*argv));
    word = malloc(len + 1);
    if (!argv || !word) {
        r = -ENOMEM;
        set_err(err, errsz, "out of memory");
        goto out;
    }

    const char *p = line;
    for (;;) {
        while (is_sep(*p))
            p++;
        if (!*p)
            break;
        if (argc == CMDLINE_MAX_WORDS) {
            set_err(err, errsz, "more than 256 words");
            goto out;
        }

        size_t wl = 0;
        char quote = 0;
        while (*p && (quote || !is_sep(*p))) {
            if (*p == '\\') {
                p++;
                if (!*p) {
                    set_err(err, errsz,
                            quote ? "unterminated quote" : "trailing backslash at end of line");
                    goto out;
                }
                const char *why = NULL;
                size_t n, olen = 0;
                n = unescape_one(p, word + wl, &olen, &why);
                if (n == 0) {
                    set_err(err, errsz, why);
                    goto out;
                }
                wl += olen;
                p += n;
            } else if (quote && *p == quote) {
                quote = 0;
                p++;
            } else if (!quote && (*p == '"' || *p == '\'')) {
                quote = *p++;
            } else {
                word[wl++] = *p++;
            }
        }
        if (quote) {
            set_err(err, errsz, "unterminated quote");
            goto out;
        }
        argv[argc] = malloc(wl + 1);
        if (!argv[argc]) {
            r = -ENOMEM;
            set_err(err, errsz, "out of memory");
            goto out;
        }
        memcpy(argv[argc], word, wl);
        argv[argc][wl] = '\0';
        argc++;
    }

    if (argc == 0) {
        set_err(err, errsz, "empty command");
        goto out;
    }
    if (argv[0][0] != '/') {
        set_err(err, errsz, "the command must be an absolute path (no PATH lookup)");
        goto out;
    }
    *argv_out = argv;
    *argc_out = argc;
    argv = NULL;
    r = 0;
out:
    free(word);
    cmdline_free(argv);
    return r;
}
