/* Token format, hashing and the failed-authentication limiter (see token.h). */
#include "api/token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nettle/memops.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/b64url.h"

#define ID_BYTES 9
#define SECRET_BYTES 32
#define SALT_BYTES 16
#define HASH_BYTES 32

static bool is_b64url(const char *s, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i++) {
        if (!s[i] || !strchr(alphabet, s[i]))
            return false;
    }
    return true;
}

/* HASH_BYTES of SHA-256 over the decoded salt followed by the secret's text. */
static int hash_secret(const char *secret, const char *salt_hex, uint8_t out[HASH_BYTES])
{
    uint8_t buf[SALT_BYTES + TOKEN_SECRET_LEN];
    size_t salt_len = SALT_BYTES;
    gnutls_datum_t hex = {(unsigned char *)salt_hex, (unsigned)strlen(salt_hex)};
    int ret = -EINVAL;
    if (hex.size != TOKEN_SALT_HEX_LEN || strlen(secret) != TOKEN_SECRET_LEN ||
        gnutls_hex_decode(&hex, buf, &salt_len) < 0 || salt_len != SALT_BYTES)
        goto out;
    memcpy(buf + SALT_BYTES, secret, TOKEN_SECRET_LEN);
    ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, sizeof(buf), out) < 0 ? -EIO : 0;
out:
    gnutls_memset(buf, 0, sizeof(buf));
    return ret;
}

static int hex_of(const uint8_t *data, size_t len, char *out, size_t outsz)
{
    gnutls_datum_t d = {(unsigned char *)data, (unsigned)len};
    size_t n = outsz;
    return gnutls_hex_encode(&d, out, &n) < 0 ? -EIO : 0;
}

/* Random base64url text of exactly LEN characters from BYTES random bytes into OUT. */
static int random_b64url(size_t bytes, char *out, size_t len)
{
    uint8_t raw[SECRET_BYTES];
    int ret = -EIO;
    if (bytes > sizeof(raw) || gnutls_rnd(GNUTLS_RND_KEY, raw, bytes) < 0)
        goto out;
    char *text = b64url_encode(raw, bytes);
    if (text && strlen(text) == len) {
        memcpy(out, text, len + 1);
        ret = 0;
    }
    if (text) {
        gnutls_memset(text, 0, strlen(text));
        free(text);
    }
out:
    gnutls_memset(raw, 0, sizeof(raw));
    return ret;
}

void token_new_wipe(struct token_new *t)
{
    if (t)
        gnutls_memset(t, 0, sizeof(*t));
}

int token_generate(struct token_new *out)
{
    char secret[TOKEN_SECRET_LEN + 1];
    uint8_t salt[SALT_BYTES], hash[HASH_BYTES];
    int ret = -EIO;

    memset(out, 0, sizeof(*out));
    if (random_b64url(ID_BYTES, out->id, TOKEN_ID_LEN) < 0 ||
        random_b64url(SECRET_BYTES, secret, TOKEN_SECRET_LEN) < 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof(salt)) < 0 ||
        hex_of(salt, sizeof(salt), out->salt_hex, sizeof(out->salt_hex)) < 0 ||
        hash_secret(secret, out->salt_hex, hash) < 0 ||
        hex_of(hash, sizeof(hash), out->hash_hex, sizeof(out->hash_hex)) < 0)
        goto out;
    memcpy(out->text, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(out->text + TOKEN_PREFIX_LEN, out->id, TOKEN_ID_LEN);
    out->text[TOKEN_PREFIX_LEN + TOKEN_ID_LEN] = '_';
    memcpy(out->text + TOKEN_PREFIX_LEN + TOKEN_ID_LEN + 1, secret, TOKEN_SECRET_LEN + 1);
    ret = 0;
out:
    gnutls_memset(secret, 0, sizeof(secret));
    gnutls_memset(hash, 0, sizeof(hash));
    if (ret < 0)
        token_new_wipe(out);
    return ret;
}

int token_parse(const char *text, char id[TOKEN_ID_LEN + 1], char secret[TOKEN_SECRET_LEN + 1])
{
    id[0] = secret[0] = '\0';
    if (!text || strnlen(text, TOKEN_LEN + 1) != TOKEN_LEN ||
        memcmp(text, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 ||
        text[TOKEN_PREFIX_LEN + TOKEN_ID_LEN] != '_' ||
        !is_b64url(text + TOKEN_PREFIX_LEN, TOKEN_ID_LEN) ||
        !is_b64url(text + TOKEN_PREFIX_LEN + TOKEN_ID_LEN + 1, TOKEN_SECRET_LEN))
        return -EINVAL;
    memcpy(id, text + TOKEN_PREFIX_LEN, TOKEN_ID_LEN);
    id[TOKEN_ID_LEN] = '\0';
    memcpy(secret, text + TOKEN_PREFIX_LEN + TOKEN_ID_LEN + 1, TOKEN_SECRET_LEN);
    secret[TOKEN_SECRET_LEN] = '\0';
    return 0;
}

bool token_secret_matches(const char *secret, const char *salt_hex, const char *hash_hex)
{
    uint8_t want[HASH_BYTES], got[HASH_BYTES];
    size_t want_len = sizeof(want);
    gnutls_datum_t hex = {(unsigned char *)hash_hex, hash_hex ? (unsigned)strlen(hash_hex) : 0};
    bool ok = false;
    if (!secret || !salt_hex || hex.size != TOKEN_HASH_HEX_LEN ||
        gnutls_hex_decode(&hex, want, &want_len) < 0 || want_len != HASH_BYTES)
        goto out;
    if (hash_secret(secret, salt_hex, got) < 0)
        goto out;
    /* memeql_sec: the time taken does not depend on where the hashes differ. */
    ok = memeql_sec(want, got, HASH_BYTES) != 0;
out:
    gnutls_memset(got, 0, sizeof(got));
    return ok;
}

/* ---- failed-authentication limiter ---- */

struct limiter_slot {
    uint8_t key[16]; /* IPv6 address (IPv4 mapped), the low 64 bits cleared for IPv6 */
    bool used;
    int64_t milli; /* attempts left, in thousandths, as of UPDATED_MS */
    int64_t updated_ms;
};

struct auth_limiter {
    pthread_mutex_t lock;
    struct limiter_slot slots[AUTH_LIMITER_SLOTS];
};

#define FULL_MILLI ((int64_t)AUTH_FAIL_BURST * 1000)

struct auth_limiter *auth_limiter_new(void)
{
    struct auth_limiter *l = calloc(1, sizeof(*l));
    if (l)
        pthread_mutex_init(&l->lock, NULL);
    return l;
}

void auth_limiter_free(struct auth_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void limiter_key(const char *addr, uint8_t key[16])
{
    struct in_addr v4;
    memset(key, 0, 16);
    if (addr && inet_pton(AF_INET, addr, &v4) == 1) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4, 4);
    } else if (addr && inet_pton(AF_INET6, addr, key) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(key, mapped, sizeof(mapped)) != 0)
            memset(key + 8, 0, 8);
    }
}

/* The slot's attempts left at NOW_MS after refilling. */
static int64_t slot_level(const struct limiter_slot *s, int64_t now_ms)
{
    int64_t elapsed = now_ms > s->updated_ms ? now_ms - s->updated_ms : 0;
    int64_t refill = elapsed > FULL_MILLI * AUTH_FAIL_REFILL_MS / 1000
                         ? FULL_MILLI
                         : elapsed * 1000 / AUTH_FAIL_REFILL_MS;
    int64_t level = s->milli + refill;
    return level > FULL_MILLI ? FULL_MILLI : level;
}

/* Addresses go to one of AUTH_LIMITER_SLOTS / LIMITER_WAYS sets by a hash of their key, so a
 * check looks at LIMITER_WAYS slots, not at the whole table: every request on the HTTPS listener
 * makes one. */
#define LIMITER_WAYS 8

static struct limiter_slot *set_of(struct auth_limiter *l, const uint8_t key[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return &l->slots[(h % (AUTH_LIMITER_SLOTS / LIMITER_WAYS)) * LIMITER_WAYS];
}

static struct limiter_slot *slot_find(struct auth_limiter *l, const uint8_t key[16])
{
    struct limiter_slot *set = set_of(l, key);
    for (size_t i = 0; i < LIMITER_WAYS; i++) {
        if (set[i].used && memcmp(set[i].key, key, 16) == 0)
            return &set[i];
    }
    return NULL;
}

/* A slot for a new address in its set: a free one, else one whose bucket has refilled (it holds
 * nothing an absent slot would not), else the one least recently failed. */
static struct limiter_slot *slot_take(struct auth_limiter *l, const uint8_t key[16],
                                      int64_t now_ms)
{
    struct limiter_slot *set = set_of(l, key), *oldest = &set[0];
    for (size_t i = 0; i < LIMITER_WAYS; i++) {
        struct limiter_slot *s = &set[i];
        if (!s->used || slot_level(s, now_ms) >= FULL_MILLI)
            return s;
        if (s->updated_ms < oldest->updated_ms)
            oldest = s;
    }
    return oldest;
}

bool auth_limiter_allowed(struct auth_limiter *l, const char *addr, int64_t now_ms,
                          unsigned *retry_after_s)
{
    uint8_t key[16];
    limiter_key(addr, key);
    pthread_mutex_lock(&l->lock);
    struct limiter_slot *s = slot_find(l, key);
    int64_t level = s ? slot_level(s, now_ms) : FULL_MILLI;
    pthread_mutex_unlock(&l->lock);
    if (level >= 1000)
        return true;
    if (retry_after_s) {
        int64_t ms = (1000 - level) * AUTH_FAIL_REFILL_MS / 1000;
        *retry_after_s = (unsigned)((ms + 999) / 1000);
    }
    return false;
}

bool auth_limiter_fail(struct auth_limiter *l, const char *addr, int64_t now_ms)
{
    uint8_t key[16];
    limiter_key(addr, key);
    pthread_mutex_lock(&l->lock);
    struct limiter_slot *s = slot_find(l, key);
    int64_t level;
    if (s) {
        level = slot_level(s, now_ms);
    } else {
        s = slot_take(l, key, now_ms);
        memcpy(s->key, key, 16);
        s->used = true;
        level = FULL_MILLI;
    }
    bool was_open = level >= 1000;
    level = level >= 1000 ? level - 1000 : 0;
    s->milli = level;
    s->updated_ms = now_ms;
    pthread_mutex_unlock(&l->lock);
    return was_open && level < 1000;
}
