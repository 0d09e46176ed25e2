/* The delivery index; see index.h. */
#include "api/index.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "api/events_bus.h"
#include "common/names.h"
#include "core/log.h"
#include "store/store.h"

#define NAME_MAX_LEN 253
/* Events read per store call while following the log. */
#define FOLLOW_BATCH 256
/* Domains read per store call while loading. */
#define LOAD_PAGE 500
/* A leaf carries at most this many dNSNames that we look at (Let's Encrypt allows 100). */
#define LEAF_SAN_MAX 1000

struct index_entry {
    atomic_uint refs;
    int64_t domain_id;
    int64_t key_id;
    int64_t not_before;
    int64_t not_after;
    char *primary;
    char **names; /* the domain's names that the leaf carries: the ones it serves */
    size_t name_count;
    char *serial;
    char *issuer;
    char *fingerprint;
    char *chain_pem;
    size_t chain_len;
    char *key_pem; /* secret */
    size_t key_len;
    char etag[INDEX_ETAG_SIZE];
    _Atomic(char *) bodies[INDEX_BODY_KINDS]; /* index_entry_body: built on first use; secret */
};

/* One name and the entries reachable under it, best first. NAME NULL: an empty slot. */
struct map_slot {
    uint64_t hash;
    char *name;
    struct index_entry **cands;
    uint32_t count;
    uint32_t cap;
};

struct name_map {
    struct map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
};

struct delivery_index {
    pthread_rwlock_t lock; /* guards both maps; entries themselves are immutable */
    uint64_t seed;
    struct name_map names;   /* served name -> entries */
    struct name_map domains; /* primary name -> its one entry */

    struct store *store;
    struct events_bus *bus;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    _Atomic int64_t cursor;
};

/* ---- entries ---- */

static void wipe_free(char *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

static void entry_free(struct index_entry *e)
{
    if (!e)
        return;
    wipe_free(e->key_pem, e->key_len);
    for (size_t i = 0; i < INDEX_BODY_KINDS; i++) {
        char *body = atomic_load(&e->bodies[i]);
        if (body)
            wipe_free(body, strlen(body));
    }
    for (size_t i = 0; i < e->name_count; i++)
        free(e->names[i]);
    free(e->names);
    free(e->primary);
    free(e->serial);
    free(e->issuer);
    free(e->fingerprint);
    free(e->chain_pem);
    free(e);
}

struct index_entry *index_entry_get(struct index_entry *e)
{
    if (e)
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void index_entry_put(struct index_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        entry_free(e);
}

/* Copies TEXT with a newline at the end if it has none, so PEM blocks can be concatenated. */
static char *dup_with_newline(const char *text, size_t *len_out)
{
    size_t len = strlen(text);
    bool add = len == 0 || text[len - 1] != '\n';
    char *p = malloc(len + add + 1);
    if (!p)
        return NULL;
    memcpy(p, text, len);
    if (add)
        p[len++] = '\n';
    p[len] = '\0';
    *len_out = len;
    return p;
}

static bool name_in(const char *name, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcasecmp(name, list[i]) == 0)
            return true;
    }
    return false;
}

static struct index_entry *entry_build(const struct index_source *src, int *err)
{
    *err = -EINVAL;
    if (!src->primary || !src->chain_pem || !src->key_pem || !src->serial ||
        !src->fingerprint_sha256 || strlen(src->primary) > NAME_MAX_LEN ||
        (src->name_count && !src->names) || (src->cert_name_count && !src->cert_names))
        return NULL;
    for (size_t i = 0; i < src->name_count; i++) {
        if (!src->names[i] || strlen(src->names[i]) > NAME_MAX_LEN)
            return NULL;
    }
    *err = -ENOMEM;
    struct index_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    atomic_init(&e->refs, 1);
    e->domain_id = src->domain_id;
    e->key_id = src->key_id;
    e->not_before = src->not_before;
    e->not_after = src->not_after;
    e->primary = strdup(src->primary);
    e->serial = strdup(src->serial);
    e->fingerprint = strdup(src->fingerprint_sha256);
    e->issuer = src->issuer ? strdup(src->issuer) : NULL;
    e->chain_pem = dup_with_newline(src->chain_pem, &e->chain_len);
    e->key_pem = dup_with_newline(src->key_pem, &e->key_len);
    e->names = calloc(src->name_count ? src->name_count : 1, sizeof(*e->names));
    if (!e->primary || !e->serial || !e->fingerprint || (src->issuer && !e->issuer) ||
        !e->chain_pem || !e->key_pem || !e->names)
        goto fail;
    for (size_t i = 0; i < src->name_count; i++) {
        /* Served only under the names the certificate really carries (see index.h). */
        if (!name_in(src->names[i], src->cert_names, src->cert_name_count))
            continue;
        if (name_in(src->names[i], (const char *const *)e->names, e->name_count))
            continue;
        if (!(e->names[e->name_count] = strdup(src->names[i])))
            goto fail;
        for (char *c = e->names[e->name_count]; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        e->name_count++;
    }

    index_etag_format(e->etag, e->fingerprint, e->key_id);
    *err = 0;
    return e;
fail:
    entry_free(e);
    return NULL;
}

void index_etag_format(char out[INDEX_ETAG_SIZE], const char *fingerprint_hex, int64_t id)
{
    snprintf(out, INDEX_ETAG_SIZE, "\"%.32s-%lld\"", fingerprint_hex ? fingerprint_hex : "",
             (long long)id);
}

/* ---- the hash map ---- */

static uint64_t name_hash(const struct delivery_index *idx, const char *name)
{
    /* FNV-1a, seeded per index so probe sequences cannot be precomputed. */
    uint64_t h = 0xcbf29ce484222325ULL ^ idx->seed;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static size_t map_find(const struct name_map *m, const char *name, uint64_t hash)
{
    if (!m->cap)
        return SIZE_MAX;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct map_slot *s = &m->slots[i];
        if (!s->name)
            return SIZE_MAX;
        if (s->hash == hash && strcmp(s->name, name) == 0)
            return i;
    }
}

static int map_grow(struct name_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct map_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].name)
            continue;
        size_t j = m->slots[i].hash & (ncap - 1);
        while (ns[j].name)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

/* True when A serves NAME better than B (see index_lookup_sni). */
static bool cand_better(const struct index_entry *a, const struct index_entry *b, const char *name)
{
    bool ap = strcmp(a->primary, name) == 0, bp = strcmp(b->primary, name) == 0;
    if (ap != bp)
        return ap;
    if (a->not_after != b->not_after)
        return a->not_after > b->not_after;
    return a->domain_id < b->domain_id;
}

static int map_add(struct name_map *m, const char *name, uint64_t hash, struct index_entry *e)
{
    size_t i = map_find(m, name, hash);
    if (i == SIZE_MAX) {
        /* At most half full: a miss (most SNI wildcard probes) stays a short scan. */
        if ((m->used + 1) * 2 > m->cap && map_grow(m) < 0)
            return -ENOMEM;
        size_t mask = m->cap - 1;
        for (i = hash & mask; m->slots[i].name; i = (i + 1) & mask)
            ;
        struct map_slot *s = &m->slots[i];
        s->cands = malloc(sizeof(*s->cands));
        s->name = strdup(name);
        if (!s->cands || !s->name) {
            free(s->cands);
            free(s->name);
            *s = (struct map_slot){0};
            return -ENOMEM;
        }
        s->hash = hash;
        s->cap = 1;
        s->count = 0;
        m->used++;
    }
    struct map_slot *s = &m->slots[i];
    if (s->count == s->cap) {
        struct index_entry **nc = reallocarray(s->cands, (size_t)s->cap * 2, sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        s->cands = nc;
        s->cap *= 2;
    }
    uint32_t pos = s->count;
    while (pos > 0 && cand_better(e, s->cands[pos - 1], s->name)) {
        s->cands[pos] = s->cands[pos - 1];
        pos--;
    }
    s->cands[pos] = e;
    s->count++;
    return 0;
}

/* Empties slot I, shifting later members of its probe run back (no tombstones, so lookups of
 * absent names never walk over dead slots). */
static void map_delete_slot(struct name_map *m, size_t i)
{
    size_t mask = m->cap - 1;
    free(m->slots[i].name);
    free(m->slots[i].cands);
    for (size_t j = (i + 1) & mask; m->slots[j].name; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* J stays when its home lies cyclically in (I, J]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        m->slots[i] = m->slots[j];
        i = j;
    }
    m->slots[i] = (struct map_slot){0};
    m->used--;
}

static void map_remove(struct name_map *m, const char *name, uint64_t hash,
                       const struct index_entry *e)
{
    size_t i = map_find(m, name, hash);
    if (i == SIZE_MAX)
        return;
    struct map_slot *s = &m->slots[i];
    for (uint32_t k = 0; k < s->count; k++) {
        if (s->cands[k] != e)
            continue;
        memmove(&s->cands[k], &s->cands[k + 1], (s->count - k - 1) * sizeof(*s->cands));
        s->count--;
        break;
    }
    if (s->count == 0)
        map_delete_slot(m, i);
}

static void map_free(struct name_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].name);
        free(m->slots[i].cands);
    }
    free(m->slots);
    *m = (struct name_map){0};
}

/* ---- index ---- */

int index_new(struct delivery_index **out)
{
    struct delivery_index *idx = calloc(1, sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    if (pthread_rwlock_init(&idx->lock, NULL) != 0) {
        free(idx);
        return -ENOMEM;
    }
    if (getrandom(&idx->seed, sizeof(idx->seed), GRND_NONBLOCK) != sizeof(idx->seed))
        idx->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    atomic_init(&idx->stopping, false);
    atomic_init(&idx->cursor, 0);
    *out = idx;
    return 0;
}

/* Takes E out of both maps. Write lock held; the maps' reference is the caller's to drop. */
static void unlink_entry(struct delivery_index *idx, struct index_entry *e)
{
    for (size_t i = 0; i < e->name_count; i++)
        map_remove(&idx->names, e->names[i], name_hash(idx, e->names[i]), e);
    map_remove(&idx->domains, e->primary, name_hash(idx, e->primary), e);
}

/* The entry of PRIMARY in the domain map, or NULL. Lock held. */
static struct index_entry *domain_entry(struct delivery_index *idx, const char *primary)
{
    size_t i = map_find(&idx->domains, primary, name_hash(idx, primary));
    return i == SIZE_MAX ? NULL : idx->domains.slots[i].cands[0];
}

int index_put(struct delivery_index *idx, const struct index_source *src)
{
    int err;
    struct index_entry *e = entry_build(src, &err);
    if (!e)
        return err;
    pthread_rwlock_wrlock(&idx->lock);
    struct index_entry *old = domain_entry(idx, e->primary);
    if (old)
        unlink_entry(idx, old);
    err = map_add(&idx->domains, e->primary, name_hash(idx, e->primary), e);
    for (size_t i = 0; err == 0 && i < e->name_count; i++)
        err = map_add(&idx->names, e->names[i], name_hash(idx, e->names[i]), e);
    if (err < 0) {
        /* Out of memory half-way: leave neither half of E behind, and keep the old entry. */
        unlink_entry(idx, e);
        if (old) {
            int rc = map_add(&idx->domains, old->primary, name_hash(idx, old->primary), old);
            for (size_t i = 0; rc == 0 && i < old->name_count; i++)
                rc = map_add(&idx->names, old->names[i], name_hash(idx, old->names[i]), old);
            if (rc < 0) {
                unlink_entry(idx, old);
            } else {
                old = NULL; /* back in the maps, which keep their reference */
            }
        }
    }
    pthread_rwlock_unlock(&idx->lock);
    index_entry_put(old);
    if (err < 0)
        index_entry_put(e);
    return err;
}

int index_drop(struct delivery_index *idx, const char *primary)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct index_entry *old = domain_entry(idx, primary);
    if (old)
        unlink_entry(idx, old);
    pthread_rwlock_unlock(&idx->lock);
    index_entry_put(old);
    return old ? 0 : -ENOENT;
}

size_t index_domain_count(struct delivery_index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = idx->domains.used;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}

size_t index_name_count(struct delivery_index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = idx->names.used;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}

int64_t index_cursor(struct delivery_index *idx)
{
    return atomic_load(&idx->cursor);
}

int index_sni_normalize(const char *host, char out[254])
{
    if (!host)
        return -EINVAL;
    size_t len = strnlen(host, NAME_MAX_LEN + 2);
    if (len && host[len - 1] == '.')
        len--;
    if (len == 0 || len > NAME_MAX_LEN)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   c == '*'))
            return -EINVAL;
        out[i] = c;
    }
    out[len] = '\0';
    return 0;
}

/* The first candidate for NAME that VISIBLE accepts, with a new reference. Lock held. */
static struct index_entry *best_for(struct delivery_index *idx, const char *name,
                                    index_visible_fn visible, void *ctx)
{
    size_t i = map_find(&idx->names, name, name_hash(idx, name));
    if (i == SIZE_MAX)
        return NULL;
    const struct map_slot *s = &idx->names.slots[i];
    for (uint32_t k = 0; k < s->count; k++) {
        if (!visible || visible(s->cands[k], ctx))
            return index_entry_get(s->cands[k]);
    }
    return NULL;
}

struct index_entry *index_lookup_sni(struct delivery_index *idx, const char *host,
                                     index_visible_fn visible, void *ctx)
{
    char name[NAME_MAX_LEN + 1], wild[NAME_MAX_LEN + 1];
    if (index_sni_normalize(host, name) < 0)
        return NULL;
    /* RFC 6125 §6.4.3: the wildcard stands for exactly the leftmost label; a name that is
     * itself a wildcard only matches a wildcard entry exactly. */
    const char *dot = strchr(name, '.');
    bool try_wild = dot && dot[1] && strncmp(name, "*.", 2) != 0;
    if (try_wild)
        snprintf(wild, sizeof(wild), "*.%s", dot + 1);

    pthread_rwlock_rdlock(&idx->lock);
    struct index_entry *e = best_for(idx, name, visible, ctx);
    if (!e && try_wild)
        e = best_for(idx, wild, visible, ctx);
    pthread_rwlock_unlock(&idx->lock);
    return e;
}

struct index_entry *index_lookup_domain(struct delivery_index *idx, const char *primary)
{
    if (!primary)
        return NULL;
    pthread_rwlock_rdlock(&idx->lock);
    struct index_entry *e = index_entry_get(domain_entry(idx, primary));
    pthread_rwlock_unlock(&idx->lock);
    return e;
}

/* ---- accessors ---- */

int64_t index_entry_domain_id(const struct index_entry *e)
{
    return e->domain_id;
}
const char *index_entry_primary(const struct index_entry *e)
{
    return e->primary;
}
const char *index_entry_etag(const struct index_entry *e)
{
    return e->etag;
}
const char *index_entry_serial(const struct index_entry *e)
{
    return e->serial;
}
const char *index_entry_issuer(const struct index_entry *e)
{
    return e->issuer;
}
const char *index_entry_fingerprint(const struct index_entry *e)
{
    return e->fingerprint;
}
int64_t index_entry_key_id(const struct index_entry *e)
{
    return e->key_id;
}
int64_t index_entry_not_before(const struct index_entry *e)
{
    return e->not_before;
}
int64_t index_entry_not_after(const struct index_entry *e)
{
    return e->not_after;
}

const char *const *index_entry_names(const struct index_entry *e, size_t *count)
{
    *count = e->name_count;
    return (const char *const *)e->names;
}

const char *index_entry_chain_pem(const struct index_entry *e, size_t *len)
{
    if (len)
        *len = e->chain_len;
    return e->chain_pem;
}

const char *index_entry_secret(const struct index_entry *e, enum index_secret what, size_t *len)
{
    const char *p = NULL;
    size_t n = 0;
    switch (what) {
    case INDEX_SECRET_KEY_PEM:
        p = e->key_pem;
        n = e->key_len;
        break;
    }
    if (len)
        *len = n;
    return p;
}

/* ---- loading from the store ---- */

/* The leaf's dNSName SANs (*OUT malloc'd strings). Parsed with GnuTLS without verifying the
 * chain: the store only holds chains verified before they were stored. */
static int leaf_dns_names(const char *chain_pem, char ***out, size_t *count)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t dat = {.data = (unsigned char *)chain_pem, .size = (unsigned)strlen(chain_pem)};
    char **names = NULL;
    size_t n = 0;
    int rc = -EINVAL;
    *out = NULL;
    *count = 0;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    /* Imports the first certificate of the PEM: the leaf. */
    if (gnutls_x509_crt_import(crt, &dat, GNUTLS_X509_FMT_PEM) < 0)
        goto out;
    for (unsigned seq = 0; seq < LEAF_SAN_MAX; seq++) {
        char buf[NAME_MAX_LEN + 2];
        size_t sz = sizeof(buf) - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &sz, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue; /* longer than any name we manage */
        if (type < 0)
            goto out;
        if (type != GNUTLS_SAN_DNSNAME || memchr(buf, '\0', sz))
            continue;
        buf[sz] = '\0';
        char **grown = reallocarray(names, n + 1, sizeof(*names));
        if (!grown) {
            rc = -ENOMEM;
            goto out;
        }
        names = grown;
        if (!(names[n] = strdup(buf))) {
            rc = -ENOMEM;
            goto out;
        }
        n++;
    }
    *out = names;
    *count = n;
    names = NULL;
    n = 0;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* Puts or drops D (already read from the store). */
static int load_domain(struct delivery_index *idx, struct store *st, const struct store_domain *d)
{
    struct store_cert *c = NULL;
    struct store_key *k = NULL;
    char **cert_names = NULL;
    size_t cert_count = 0;
    const char *names[NAMES_MAX];
    size_t n = 0;
    int rc;

    if (strcmp(d->status, DOMAIN_STATUS_REMOVED) == 0) {
        index_drop(idx, d->name);
        return 0;
    }
    rc = store_cert_current(st, d->id, &c);
    if (rc == 0)
        rc = store_key_get_pem(st, c->key_id, &k);
    if (rc == -ENOENT) {
        index_drop(idx, d->name);
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = leaf_dns_names(c->chain_pem, &cert_names, &cert_count);
    if (rc < 0) {
        log_warning("delivery index: the stored chain of %s is unreadable; not served", d->name);
        index_drop(idx, d->name);
        goto out;
    }
    names[n++] = d->name;
    for (size_t i = 0; i < d->alt_count && n < NAMES_MAX; i++)
        names[n++] = d->alt_names[i];
    struct index_source src = {
        .domain_id = d->id,
        .primary = d->name,
        .names = names,
        .name_count = n,
        .cert_names = (const char *const *)cert_names,
        .cert_name_count = cert_count,
        .chain_pem = c->chain_pem,
        .key_pem = k->pem,
        .key_id = c->key_id,
        .serial = c->serial,
        .issuer = c->issuer,
        .fingerprint_sha256 = c->fingerprint_sha256,
        .not_before = c->not_before,
        .not_after = c->not_after,
    };
    rc = index_put(idx, &src);
out:
    for (size_t i = 0; i < cert_count; i++)
        free(cert_names[i]);
    free(cert_names);
    store_key_free(k);
    store_cert_free(c);
    return rc;
}

int index_refresh_domain(struct delivery_index *idx, struct store *st, const char *primary)
{
    struct store_domain *d = NULL;
    int rc = store_domain_get(st, primary, &d);
    if (rc == -ENOENT) {
        index_drop(idx, primary);
        return 0;
    }
    if (rc < 0)
        return rc;
    rc = load_domain(idx, st, d);
    store_domain_free(d);
    return rc;
}

static int load_all(struct delivery_index *idx, struct store *st)
{
    char after[NAME_BUF_SIZE] = "";
    size_t total = 0;
    for (;;) {
        struct store_domain **list = NULL;
        size_t n = 0;
        int rc = store_domain_list(st, after[0] ? after : NULL, LOAD_PAGE, false, &list, &n);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            rc = load_domain(idx, st, list[i]);
            if (rc < 0) {
                log_warning("delivery index: cannot load %s: %s", list[i]->name, strerror(-rc));
                if (rc == -ENOMEM) {
                    store_domain_list_free(list, n);
                    return rc;
                }
            }
        }
        total += n;
        if (n)
            snprintf(after, sizeof(after), "%s", list[n - 1]->name);
        store_domain_list_free(list, n);
        if (n < LOAD_PAGE)
            break;
    }
    log_info("delivery index: %zu certificates for %zu managed domains", index_domain_count(idx),
             total);
    return 0;
}

/* Reloads everything: the domains indexed now (dropping those gone from the store) and every
 * managed one. For when events were pruned before the index read them. */
static int resync(struct delivery_index *idx)
{
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    pthread_rwlock_rdlock(&idx->lock);
    names = calloc(idx->domains.used ? idx->domains.used : 1, sizeof(*names));
    for (size_t i = 0; names && i < idx->domains.cap; i++) {
        if (idx->domains.slots[i].name && !(names[n++] = strdup(idx->domains.slots[i].name)))
            rc = -ENOMEM;
    }
    pthread_rwlock_unlock(&idx->lock);
    if (!names)
        return -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = index_refresh_domain(idx, idx->store, names[i]);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc < 0 ? rc : load_all(idx, idx->store);
}

/* Whether an event of TYPE can change what the index holds for its domain. */
static bool event_relevant(const char *type)
{
    return strncmp(type, "certificate.", 12) == 0 || strncmp(type, "domain.", 7) == 0 ||
           strncmp(type, "key.", 4) == 0;
}

/* Applies the events after the cursor. A refresh reads the domain's latest state, so each
 * domain is reloaded once per batch however many of its events the batch holds. Returns 0, or
 * a negative errno when the store failed (the cursor then stops before the event not applied,
 * so it is retried). */
static int apply_events(struct delivery_index *idx)
{
    int64_t first = 0, cursor0 = atomic_load(&idx->cursor), last = 0;
    if (store_event_first_id(idx->store, &first) == 0 && first > cursor0 + 1 &&
        store_event_last_id(idx->store, &last) == 0) {
        log_warning("delivery index: events %lld to %lld were pruned unread; reloading",
                    (long long)cursor0 + 1, (long long)first - 1);
        int rc = resync(idx);
        if (rc < 0)
            return rc;
        /* An emptied log reports last id 0; everything before FIRST is gone either way. */
        atomic_store(&idx->cursor, last > first - 1 ? last : first - 1);
    }
    for (;;) {
        struct store_event **evs = NULL;
        size_t n = 0;
        int64_t cursor = atomic_load(&idx->cursor);
        int rc = store_event_list(idx->store, cursor, FOLLOW_BATCH, &evs, &n);
        if (rc < 0)
            return rc;
        const char *done[FOLLOW_BATCH];
        size_t ndone = 0;
        for (size_t i = 0; i < n; i++) {
            const struct store_event *ev = evs[i];
            bool seen = !ev->domain || !event_relevant(ev->type);
            for (size_t j = 0; !seen && j < ndone; j++)
                seen = strcmp(done[j], ev->domain) == 0;
            if (!seen) {
                rc = index_refresh_domain(idx, idx->store, ev->domain);
                if (rc < 0) {
                    log_warning("delivery index: cannot reload %s: %s", ev->domain, strerror(-rc));
                    break;
                }
                done[ndone++] = ev->domain;
            }
            atomic_store(&idx->cursor, ev->id);
        }
        store_event_list_free(evs, n);
        if (rc < 0)
            return rc;
        if (n < FOLLOW_BATCH)
            return 0;
    }
}

static void *follow_main(void *arg)
{
    pthread_setname_np(pthread_self(), "certd-index"); /* for top -H, ps -L and the benchmarks */
    struct delivery_index *idx = arg;
    while (!atomic_load(&idx->stopping)) {
        /* A bounded wait, so a stop is noticed even if nobody stops the bus. */
        int64_t last = events_bus_wait(idx->bus, atomic_load(&idx->cursor), 1000);
        if (last == -ECANCELED)
            break;
        if (last <= atomic_load(&idx->cursor))
            continue;
        if (apply_events(idx) < 0) {
            /* The store failed: retry later rather than spin. */
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int index_start(struct delivery_index *idx, struct store *st, struct events_bus *bus)
{
    if (idx->started)
        return -EALREADY;
    int64_t cursor = 0;
    int rc = store_event_last_id(st, &cursor);
    if (rc < 0)
        return rc;
    idx->store = st;
    idx->bus = bus;
    atomic_store(&idx->cursor, cursor);
    rc = load_all(idx, st);
    if (rc < 0)
        return rc;
    rc = pthread_create(&idx->thread, NULL, follow_main, idx);
    if (rc != 0)
        return -rc;
    idx->started = true;
    return 0;
}

void index_free(struct delivery_index *idx)
{
    if (!idx)
        return;
    if (idx->started) {
        atomic_store(&idx->stopping, true);
        pthread_join(idx->thread, NULL);
    }
    pthread_rwlock_wrlock(&idx->lock);
    for (size_t i = 0; i < idx->domains.cap; i++) {
        if (idx->domains.slots[i].name)
            index_entry_put(idx->domains.slots[i].cands[0]);
    }
    map_free(&idx->domains);
    map_free(&idx->names);
    pthread_rwlock_unlock(&idx->lock);
    pthread_rwlock_destroy(&idx->lock);
    free(idx);
}

const char *index_entry_body(struct index_entry *e, enum index_body what,
                             char *(*render)(const struct index_entry *), size_t *len)
{
    if ((unsigned)what >= INDEX_BODY_KINDS)
        return NULL;
    char *have = atomic_load(&e->bodies[what]);
    if (!have) {
        char *built = render(e);
        if (!built)
            return NULL;
        /* Two first requests may race: one rendering wins, the other is wiped. */
        if (atomic_compare_exchange_strong(&e->bodies[what], &have, built))
            have = built;
        else
            wipe_free(built, strlen(built));
    }
    if (len)
        *len = strlen(have);
    return have;
}
