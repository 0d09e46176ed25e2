/* Certificate revocation (RFC 8555 §7.6). */
#ifndef CERTD_ACME_REVOKE_H
#define CERTD_ACME_REVOKE_H

#include "acme/client.h"

/*
 * Asks the CA to revoke the leaf of CHAIN_PEM with REASON (RFC 5280 §5.3.1 code, or -1 to send
 * none). Signed by the account first; when the CA refuses that (a CA that lost the account
 * authorises no one else), signed again by the certificate's own key KEY_PEM (may be NULL).
 * A certificate the CA reports as already revoked counts as done. 0, or -EIO/-EPROTO with ERR.
 */
int acme_revoke(struct acme_client *c, const char *chain_pem, int reason, const char *key_pem,
                struct acme_error *err);

/* RFC 5280 reason names ("keyCompromise", ...) to codes; -1 for an unknown name or code 7
 * (unused in RFC 5280). */
int acme_revocation_reason(const char *name);

#endif
