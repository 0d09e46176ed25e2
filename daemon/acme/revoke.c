#include "acme/revoke.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "crypto/b64url.h"
#include "crypto/certinfo.h"

/* RFC 5280 §5.3.1 CRLReason; 7 is unused. */
static const char *const reason_names[] = {
    "unspecified",          "keyCompromise",    "cACompromise",         "affiliationChanged",
    "superseded",           "cessationOfOperation", "certificateHold",  NULL,
    "removeFromCRL",        "privilegeWithdrawn",   "aACompromise",
};

int acme_revocation_reason(const char *name)
{
    for (int i = 0; i < (int)(sizeof(reason_names) / sizeof(reason_names[0])); i++) {
        if (reason_names[i] && strcmp(reason_names[i], name) == 0)
            return i;
    }
    return -1;
}

int acme_revoke(struct acme_client *c, const char *chain_pem, int reason, const char *key_pem,
                struct acme_error *err)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    char *der64 = NULL;
    json_t *payload = NULL;
    int rc = -EINVAL;
    const char *url = acme_client_dir_url(c, "revokeCert", err);
    if (!url)
        return -EIO;
    if (cert_leaf_der(chain_pem, &der, &der_len) < 0 || !(der64 = b64url_encode(der, der_len))) {
        snprintf(err->message, sizeof(err->message), "the stored certificate is unreadable");
        goto out;
    }
    payload = json_pack("{s:s}", "certificate", der64);
    if (!payload)
        goto out;
    if (reason >= 0)
        json_object_set_new(payload, "reason", json_integer(reason));

    struct acme_http_response resp;
    rc = acme_client_post(c, url, payload, NULL, &resp, NULL, err);
    if (rc == 0) {
        acme_http_response_free(&resp);
        goto out;
    }
    if (rc == -EPROTO && acme_error_is(err, "alreadyRevoked")) {
        acme_error_clear(err);
        rc = 0;
        goto out;
    }
    /* §7.6: the certificate's key may sign the request itself (jwk, no account). */
    if (rc == -EPROTO && key_pem) {
        log_notice("CA %s refused revocation by the account (%s); signing with the certificate "
                   "key", acme_client_name(c), err->message);
        acme_error_clear(err);
        rc = acme_client_post_with_key(c, key_pem, url, payload, &resp, err);
        if (rc == 0)
            acme_http_response_free(&resp);
        else if (rc == -EPROTO && acme_error_is(err, "alreadyRevoked")) {
            acme_error_clear(err);
            rc = 0;
        }
    }
out:
    json_decref(payload);
    free(der);
    free(der64);
    return rc;
}
