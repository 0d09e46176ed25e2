#include "crypto/b64url.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>

char *b64url_encode(const void *data, size_t len)
{
    struct base64_encode_ctx ctx;
    size_t cap, n;
    char *out;

    /* BASE64_ENCODE_LENGTH does len * 8: refuse lengths where that would wrap. */
    if (len > (SIZE_MAX - 16) / 8)
        return NULL;
    cap = BASE64_ENCODE_LENGTH(len) + BASE64_ENCODE_FINAL_LENGTH + 1;
    out = malloc(cap);
    if (!out)
        return NULL;
    base64url_encode_init(&ctx);
    n = base64_encode_update(&ctx, out, len, data);
    n += base64_encode_final(&ctx, out + n);
    /* JOSE (RFC 7515 §2) drops the '=' padding that nettle writes. */
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    return out;
}

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int b64url_decode(const char *s, uint8_t **out, size_t *out_len)
{
    static const char padding[] = "==";
    struct base64_decode_ctx ctx;
    size_t len, data_len, pad, n = 0, m = 0;
    uint8_t *buf;

    *out = NULL;
    *out_len = 0;
    if (!s)
        return -EINVAL;
    len = strlen(s);
    /* Optional padding, at most two '=' and only where a padded encoding has it. nettle would
     * also skip whitespace anywhere, which is not base64url, so the alphabet is checked here. */
    data_len = len;
    while (data_len > 0 && s[data_len - 1] == '=' && len - data_len < 2)
        data_len--;
    for (size_t i = 0; i < data_len; i++) {
        if (!is_b64url_char(s[i]))
            return -EINVAL;
    }
    if (data_len % 4 == 1)
        return -EINVAL;
    pad = (4 - data_len % 4) % 4;
    if (len != data_len && len - data_len != pad)
        return -EINVAL; /* padding present but of the wrong length */

    /* One spare byte so malloc(0) never happens for the empty string. */
    buf = malloc(BASE64_DECODE_LENGTH(data_len) + 1);
    if (!buf)
        return -ENOMEM;
    base64url_decode_init(&ctx);
    /* nettle only accepts a final partial quantum with its padding, so we feed the padding
     * ourselves; its padding check also rejects non-zero trailing bits (RFC 4648 §3.5). */
    if (!base64_decode_update(&ctx, &n, buf, data_len, s) ||
        !base64_decode_update(&ctx, &m, buf + n, pad, padding) || !base64_decode_final(&ctx)) {
        explicit_bzero(buf, BASE64_DECODE_LENGTH(data_len) + 1);
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    *out_len = n + m;
    return 0;
}
