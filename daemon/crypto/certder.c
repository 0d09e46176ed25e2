#include "crypto/certinfo.h"

#include <errno.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>

int cert_leaf_der(const char *pem, uint8_t **der, size_t *der_len)
{
    if (!pem || !der || !der_len)
        return -EINVAL;
    gnutls_x509_crt_t crt;
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned)strlen(pem)}, out = {NULL, 0};
    int rc = -EINVAL;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    /* Import reads the first PEM certificate of a bundle. */
    if (gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &out) < 0)
        goto out;
    *der = malloc(out.size);
    if (!*der) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(*der, out.data, out.size);
    *der_len = out.size;
    rc = 0;
out:
    gnutls_free(out.data);
    gnutls_x509_crt_deinit(crt);
    return rc;
}
