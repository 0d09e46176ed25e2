/* A small set-associative cache of token rows in front of the store (see token_cache.h). */
#include "api/token_cache.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "store/store.h"

/* 128 sets of 4: a few hundred live tokens stay cached; ids are random, so they spread. */
#define CACHE_SETS 128
#define CACHE_WAYS 4
/* Longest scope a stored token may have: the API caps a scope far below this. */
#define SCOPE_ENTRIES_MAX (NAMES_MAX * 10)

struct cache_entry {
    bool used;
    uint64_t generation; /* store_token_generation when the row was read */
    int64_t fetched_ms;
    int64_t last_used_at; /* as stored, then as touched through this cache */
    struct token_view view;
};

struct token_cache {
    pthread_mutex_t lock;
    struct cache_entry sets[CACHE_SETS][CACHE_WAYS];
};

void token_view_clear(struct token_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->scope_count; i++)
        free(v->scope[i]);
    free(v->scope);
    memset(v, 0, sizeof(*v));
}

struct token_cache *token_cache_new(void)
{
    struct token_cache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    return c;
}

void token_cache_free(struct token_cache *c)
{
    if (!c)
        return;
    for (size_t s = 0; s < CACHE_SETS; s++) {
        for (size_t w = 0; w < CACHE_WAYS; w++)
            token_view_clear(&c->sets[s][w].view);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct cache_entry *set_of(struct token_cache *c, const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return c->sets[h % CACHE_SETS];
}

static struct cache_entry *entry_find(struct token_cache *c, const char *id)
{
    struct cache_entry *set = set_of(c, id);
    for (size_t w = 0; w < CACHE_WAYS; w++) {
        if (set[w].used && strcmp(set[w].view.id, id) == 0)
            return &set[w];
    }
    return NULL;
}

/* Where ID goes: its own entry, else a free way, else the way read longest ago. */
static struct cache_entry *entry_for(struct token_cache *c, const char *id)
{
    struct cache_entry *set = set_of(c, id), *victim = &set[0];
    for (size_t w = 0; w < CACHE_WAYS; w++) {
        if (set[w].used && strcmp(set[w].view.id, id) == 0)
            return &set[w];
    }
    for (size_t w = 0; w < CACHE_WAYS; w++) {
        if (!set[w].used)
            return &set[w];
        if (set[w].fetched_ms < victim->fetched_ms)
            victim = &set[w];
    }
    return victim;
}

/* Deep copy of SRC's scope into DST (whose other fields are copied as they are). */
static int view_copy(struct token_view *dst, const struct token_view *src)
{
    *dst = *src;
    dst->scope = NULL;
    dst->scope_count = 0;
    if (!src->scope_count)
        return 0;
    dst->scope = calloc(src->scope_count, sizeof(*dst->scope));
    if (!dst->scope)
        return -ENOMEM;
    for (size_t i = 0; i < src->scope_count; i++) {
        if (!(dst->scope[i] = strdup(src->scope[i]))) {
            token_view_clear(dst);
            return -ENOMEM;
        }
        dst->scope_count = i + 1;
    }
    return 0;
}

/* The scope column (a JSON array of strings; NULL for none) into V. An empty array would read
 * as "unscoped", so it is refused as corrupt. */
static int scope_parse(const char *scope_json, struct token_view *v)
{
    if (!scope_json)
        return 0;
    json_t *arr = json_loads(scope_json, 0, NULL);
    size_t n = json_array_size(arr);
    int ret = -EINVAL;
    if (!json_is_array(arr) || n == 0 || n > SCOPE_ENTRIES_MAX)
        goto out;
    ret = -ENOMEM;
    if (!(v->scope = calloc(n, sizeof(*v->scope))))
        goto out;
    for (size_t i = 0; i < n; i++) {
        const char *entry = json_string_value(json_array_get(arr, i));
        if (!entry) {
            ret = -EINVAL;
            goto out;
        }
        if (!(v->scope[i] = strdup(entry)))
            goto out;
        v->scope_count = i + 1;
    }
    ret = 0;
out:
    json_decref(arr);
    return ret;
}

static bool copy_exact(char *dst, size_t dstsz, const char *src, size_t want_len)
{
    if (!src || strlen(src) != want_len || want_len >= dstsz)
        return false;
    memcpy(dst, src, want_len + 1);
    return true;
}

/* The row as a view. A role name too long for the view is left empty: no role then. */
static int view_from_row(const struct store_token *t, struct token_view *v)
{
    memset(v, 0, sizeof(*v));
    if (!copy_exact(v->id, sizeof(v->id), t->id, TOKEN_ID_LEN) ||
        !copy_exact(v->salt, sizeof(v->salt), t->salt, TOKEN_SALT_HEX_LEN) ||
        !copy_exact(v->hash, sizeof(v->hash), t->hash, TOKEN_HASH_HEX_LEN))
        return -EINVAL;
    snprintf(v->name, sizeof(v->name), "%s", t->name ? t->name : "");
    if (t->role && strlen(t->role) < sizeof(v->role))
        memcpy(v->role, t->role, strlen(t->role) + 1);
    v->expires_at = t->expires_at;
    v->revoked_at = t->revoked_at;
    int ret = scope_parse(t->scope_json, v);
    if (ret < 0)
        token_view_clear(v);
    return ret;
}

int token_cache_get(struct token_cache *c, struct store *st, const char *id, int64_t now_ms,
                    struct token_view *out)
{
    memset(out, 0, sizeof(*out));
    if (strlen(id) != TOKEN_ID_LEN)
        return -ENOENT;

    /* Read before the row: a change committed after this read makes the entry stale. */
    uint64_t generation = store_token_generation(st);
    int ret = -ENOENT;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *e = entry_find(c, id);
    if (e && e->generation == generation && now_ms >= e->fetched_ms &&
        now_ms - e->fetched_ms < TOKEN_CACHE_TTL_MS)
        ret = view_copy(out, &e->view);
    pthread_mutex_unlock(&c->lock);
    if (ret != -ENOENT)
        return ret;

    struct store_token *row = NULL;
    struct token_view fresh;
    if ((ret = store_token_get(st, id, &row)) < 0)
        return ret;
    ret = view_from_row(row, &fresh);
    int64_t last_used_at = row->last_used_at;
    store_token_free(row);
    if (ret < 0)
        return ret;
    if ((ret = view_copy(out, &fresh)) < 0) {
        token_view_clear(&fresh);
        return ret;
    }
    pthread_mutex_lock(&c->lock);
    e = entry_for(c, id);
    /* A touch recorded through the old entry is newer than what the row said when read. */
    if (e->used && strcmp(e->view.id, id) == 0 && e->last_used_at > last_used_at)
        last_used_at = e->last_used_at;
    token_view_clear(&e->view);
    *e = (struct cache_entry){.used = true,
                              .generation = generation,
                              .fetched_ms = now_ms,
                              .last_used_at = last_used_at,
                              .view = fresh};
    pthread_mutex_unlock(&c->lock);
    return 0;
}

bool token_cache_touch_due(struct token_cache *c, const char *id, int64_t now, int64_t interval_s)
{
    bool due = true;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *e = entry_find(c, id);
    if (e) {
        due = now - e->last_used_at >= interval_s;
        if (due)
            e->last_used_at = now;
    }
    pthread_mutex_unlock(&c->lock);
    return due;
}
