/*
 * Tokens as authentication needs them, kept in memory so that a fleet member's requests do not
 * each read the token's row (and wait for the store's lock). An entry is used only while the
 * store's token generation is the one it was read under, so an added or revoked token is seen
 * at the next request; entries also age out after TOKEN_CACHE_TTL_MS, which bounds what a
 * store shared between nodes could change behind this one's back. Only rows of known ids are
 * kept: an unknown id always goes to the store (and the failure limiter). Thread-safe.
 */
#ifndef CERTD_API_TOKEN_CACHE_H
#define CERTD_API_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/token.h"

struct store;
struct token_cache;

#define TOKEN_CACHE_TTL_MS 30000
#define TOKEN_CACHE_NAME_MAX 32 /* the part of a token's name that goes into actors */
#define TOKEN_CACHE_ROLE_MAX 16

/* A copy of one token: the caller owns SCOPE (token_view_clear frees it). */
struct token_view {
    char id[TOKEN_ID_LEN + 1];
    char name[TOKEN_CACHE_NAME_MAX + 1];
    char role[TOKEN_CACHE_ROLE_MAX];
    char salt[TOKEN_SALT_HEX_LEN + 1];
    char hash[TOKEN_HASH_HEX_LEN + 1];
    int64_t expires_at; /* 0: never */
    int64_t revoked_at; /* 0: live */
    /* The scope's entries; NULL (count 0) when the token has none, i.e. sees every domain. */
    char **scope;
    size_t scope_count;
};

/* NULL on allocation failure. */
struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c);

/*
 * The token with public id ID, from the cache when the entry is current, else from ST (and
 * then cached). 0; -ENOENT when ST has no such token; -EINVAL when the stored row is unusable
 * (a scope that is not a non-empty array of strings); -ENOMEM; another -errno from the store.
 * NOW_MS is monotonic.
 */
int token_cache_get(struct token_cache *c, struct store *st, const char *id, int64_t now_ms,
                    struct token_view *out);

/*
 * Whether the token's last use should be written now (at NOW, wall clock seconds): true at most
 * once per INTERVAL_S per token while it is cached, so that concurrent requests do not all
 * write. The caller then calls store_token_touch.
 */
bool token_cache_touch_due(struct token_cache *c, const char *id, int64_t now, int64_t interval_s);

void token_view_clear(struct token_view *v);

#endif
