#include "core/confhold.h"

#include <pthread.h>
#include <stdlib.h>

/* A config plus the number of references handed out. The holder's own reference counts as one,
 * so a config is freed by whoever drops the count to zero: the holder on replace, or the last
 * request thread still using an old one. */
struct config_ref {
    struct config *cfg;
    unsigned refs;
};

struct config_holder {
    pthread_mutex_t lock;
    struct config_ref *current;
    /* Superseded configs still referenced by some thread; few, since reloads are rare. */
    struct config_ref **old;
    size_t old_count;
};

static struct config_ref *ref_new(struct config *cfg)
{
    struct config_ref *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = cfg;
    r->refs = 1;
    return r;
}

struct config_holder *config_holder_new(struct config *cfg)
{
    struct config_holder *h = calloc(1, sizeof(*h));
    if (!h || !(h->current = ref_new(cfg))) {
        free(h);
        config_free(cfg);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void config_holder_free(struct config_holder *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->old_count; i++) {
        config_free(h->old[i]->cfg);
        free(h->old[i]);
    }
    free(h->old);
    config_free(h->current->cfg);
    free(h->current);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

const struct config *config_holder_get(struct config_holder *h)
{
    pthread_mutex_lock(&h->lock);
    h->current->refs++;
    const struct config *cfg = h->current->cfg;
    pthread_mutex_unlock(&h->lock);
    return cfg;
}

/* Drops one reference of R; called with the lock held. Returns true when R was freed. */
static bool ref_drop(struct config_ref *r)
{
    if (--r->refs > 0)
        return false;
    config_free(r->cfg);
    free(r);
    return true;
}

void config_holder_put(struct config_holder *h, const struct config *cfg)
{
    if (!cfg)
        return;
    pthread_mutex_lock(&h->lock);
    if (h->current->cfg == cfg) {
        h->current->refs--; /* the holder's own reference keeps it above zero */
    } else {
        for (size_t i = 0; i < h->old_count; i++) {
            if (h->old[i]->cfg != cfg)
                continue;
            if (ref_drop(h->old[i]))
                h->old[i] = h->old[--h->old_count];
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
}

void config_holder_replace(struct config_holder *h, struct config *cfg)
{
    struct config_ref *r = ref_new(cfg);
    if (!r) {
        config_free(cfg);
        return;
    }
    pthread_mutex_lock(&h->lock);
    struct config_ref *prev = h->current;
    h->current = r;
    if (!ref_drop(prev)) {
        struct config_ref **grown = realloc(h->old, (h->old_count + 1) * sizeof(*grown));
        if (grown) {
            h->old = grown;
            h->old[h->old_count++] = prev;
        }
        /* On allocation failure the old config leaks rather than being freed under a reader. */
    }
    pthread_mutex_unlock(&h->lock);
}
