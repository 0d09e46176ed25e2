/* The live configuration, swappable on SIGHUP while request threads hold references to the one
 * they started with. */
#ifndef CERTD_CORE_CONFHOLD_H
#define CERTD_CORE_CONFHOLD_H

#include "core/config.h"

struct config_holder;

/* Takes ownership of CFG. NULL on allocation failure (CFG is then freed). */
struct config_holder *config_holder_new(struct config *cfg);
/* Frees the holder and its current config; every reference must have been put back. */
void config_holder_free(struct config_holder *h);

/* A reference to the current configuration, valid until config_holder_put. Never NULL. */
const struct config *config_holder_get(struct config_holder *h);
void config_holder_put(struct config_holder *h, const struct config *cfg);

/* Makes CFG (ownership taken) current; the old one is freed when its last reference goes. */
void config_holder_replace(struct config_holder *h, struct config *cfg);

#endif
