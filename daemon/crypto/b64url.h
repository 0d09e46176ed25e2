/* base64url without padding (RFC 4648 §5, as JOSE and ACME use it), on nettle. */
#ifndef CERTD_CRYPTO_B64URL_H
#define CERTD_CRYPTO_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* New NUL-terminated string (caller frees), or NULL on allocation failure. */
char *b64url_encode(const void *data, size_t len);

/* Decodes S (padding tolerated but not required). *OUT is malloc'd (caller frees; wipe it if
 * it held a secret). -EINVAL for characters outside the alphabet or a bad length. */
int b64url_decode(const char *s, uint8_t **out, size_t *out_len);

#endif
