/*
 * INI configuration loader. Every key is one row of keys[] below (section, name, parser, where the
 * value goes), so adding a key is one line here plus its documentation in
 * packaging/certd.conf.example and docs/config.md.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/names.h"
#include "core/cmdline.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_CAS 64
#define CONFIG_MAX_DOMAINS 10000
#define CONFIG_MAX_LIST 256
#define CONFIG_MAX_NAME 256 /* user and group names */
#define ECHO_MAX 80         /* how much of a bad value an error message quotes */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum section_kind {
    SEC_NONE,
    SEC_DAEMON,
    SEC_ACME,
    SEC_ACCESS,
    SEC_CA,
    SEC_HTTP01,
    SEC_DNS01,
    SEC_TLSALPN01,
    SEC_RENEWAL,
    SEC_DOMAIN,
    SEC_API_HTTPS,
    SEC_COUNT
};

/* clang-format off: one section per line */
static const struct {
    const char *name;
    enum section_kind kind;
} fixed_sections[] = {
    {"daemon", SEC_DAEMON},          {"acme", SEC_ACME},
    {"access", SEC_ACCESS},          {"challenge.http-01", SEC_HTTP01},
    {"challenge.dns-01", SEC_DNS01}, {"challenge.tls-alpn-01", SEC_TLSALPN01},
    {"renewal", SEC_RENEWAL},        {"api.https", SEC_API_HTTPS},
};
/* clang-format on */

struct key_def;

/* Parses VALUE into *FIELD (the member the row points at), replacing and freeing what was there.
 * On a bad value returns -EINVAL and says what was expected in WHY, never quoting the value (the
 * caller decides whether it may be quoted). */
typedef int (*key_parse_fn)(const struct key_def *def, const char *value, void *field, char *why,
                            size_t whysz);

/* The value must never appear in an error message (secrets, command lines that may hold tokens). */
#define KEY_NO_ECHO 0x1
/* The value keeps its double quotes: it has a quoting syntax of its own (command lines). */
#define KEY_RAW 0x2

struct key_def {
    enum section_kind section;
    const char *name;
    key_parse_fn parse;
    size_t offset; /* into struct config, struct config_ca for SEC_CA, struct config_domain for
                      SEC_DOMAIN */
    unsigned flags;
    uint64_t min, max; /* numbers and durations: the range; strings: max length when nonzero */
};

/* ---- value parsers -------------------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

static int replace_str(void *field, const char *value)
{
    char *dup = strdup(value);
    if (!dup)
        return -ENOMEM;
    char **slot = field;
    free(*slot);
    *slot = dup;
    return 0;
}

static int parse_string(const struct key_def *def, const char *v, void *field, char *why,
                        size_t whysz)
{
    if (!*v || has_ctl(v)) {
        snprintf(why, whysz, "expected a non-empty string without control characters");
        return -EINVAL;
    }
    return replace_str(field, v);
}

static int parse_path(const struct key_def *def, const char *v, void *field, char *why,
                      size_t whysz)
{
    if (v[0] != '/' || has_ctl(v)) {
        snprintf(why, whysz, "expected an absolute path");
        return -EINVAL;
    }
    if (def->max && strlen(v) > def->max) {
        snprintf(why, whysz, "expected an absolute path of at most %llu bytes",
                 (unsigned long long)def->max);
        return -EINVAL;
    }
    return replace_str(field, v);
}

/* User and group names as getpwnam/getgrnam take them (also "user@domain" from sssd and the "$"
 * of machine accounts), or numeric ids. */
static bool valid_account(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_MAX_NAME || s[0] == '-')
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("_.@$-", *s)))
            return false;
    }
    return true;
}

static int parse_account(const struct key_def *def, const char *v, void *field, char *why,
                         size_t whysz)
{
    if (!valid_account(v)) {
        snprintf(why, whysz, "expected a user or group name, or a numeric id");
        return -EINVAL;
    }
    return replace_str(field, v);
}

static int parse_mode(const struct key_def *def, const char *v, void *field, char *why,
                      size_t whysz)
{
    unsigned long m = 0;
    size_t n = strlen(v);
    bool ok = n >= 1 && n <= 4;
    for (const char *p = v; ok && *p; p++) {
        ok = *p >= '0' && *p <= '7';
        m = m * 8 + (unsigned long)(*p - '0');
    }
    if (!ok || m > def->max) {
        snprintf(why, whysz, "expected an octal mode such as 0660, at most %llo",
                 (unsigned long long)def->max);
        return -EINVAL;
    }
    *(mode_t *)field = (mode_t)m;
    return 0;
}

static int parse_log_level(const struct key_def *def, const char *v, void *field, char *why,
                           size_t whysz)
{
    if (!log_level_parse(v, field)) {
        snprintf(why, whysz, "expected error, warning, notice, info or debug");
        return -EINVAL;
    }
    return 0;
}

static int parse_key_type(const struct key_def *def, const char *v, void *field, char *why,
                          size_t whysz)
{
    if (!key_type_parse(v, field)) {
        snprintf(why, whysz, "expected ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096");
        return -EINVAL;
    }
    return 0;
}

/* Decimal digits only (strtoul would take signs, spaces and hex), up to UINT32_MAX. */
static bool parse_u32(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return false;
        p++;
    }
    if (p == s)
        return false;
    *end = p;
    *out = v;
    return true;
}

static int parse_unsigned(const struct key_def *def, const char *v, void *field, char *why,
                          size_t whysz)
{
    const char *end;
    uint64_t n;
    if (!parse_u32(v, &end, &n) || *end || n < def->min || n > def->max) {
        snprintf(why, whysz, "expected a whole number from %llu to %llu",
                 (unsigned long long)def->min, (unsigned long long)def->max);
        return -EINVAL;
    }
    *(unsigned *)field = (unsigned)n;
    return 0;
}

int config_parse_duration(const char *s, uint64_t *seconds)
{
    const char *end;
    uint64_t n, mult = 1;

    if (!s || !parse_u32(s, &end, &n))
        return s && *s >= '0' && *s <= '9' ? -ERANGE : -EINVAL;
    switch (*end) {
    case '\0':
    case 's':
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1])
        return -EINVAL;
    if (n * mult > UINT32_MAX)
        return -ERANGE;
    *seconds = n * mult;
    return 0;
}

static int parse_duration(const struct key_def *def, const char *v, void *field, char *why,
                          size_t whysz)
{
    uint64_t secs;
    if (config_parse_duration(v, &secs) < 0 || secs < def->min || secs > def->max) {
        snprintf(why, whysz,
                 "expected a duration from %llus to %llus (a number with optional s, m, h or d)",
                 (unsigned long long)def->min, (unsigned long long)def->max);
        return -EINVAL;
    }
    *(unsigned *)field = (unsigned)secs;
    return 0;
}

static int parse_bool(const struct key_def *def, const char *v, void *field, char *why,
                      size_t whysz)
{
    static const char *const yes[] = {"true", "yes", "1", "on"};
    static const char *const no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *(bool *)field = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *(bool *)field = false;
            return 0;
        }
    }
    snprintf(why, whysz, "expected a boolean (true/false, yes/no, on/off, 1/0)");
    return -EINVAL;
}

static bool parse_port(const char *s)
{
    const char *end;
    uint64_t port;
    return parse_u32(s, &end, &port) && !*end && end - s <= 5 && port >= 1 && port <= 65535;
}

/* "ADDR:PORT" with a dotted IPv4 address, or "[IPv6]:PORT". */
static int parse_listen(const struct key_def *def, const char *v, void *field, char *why,
                        size_t whysz)
{
    char host[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    const char *port;
    bool ok = false;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        size_t n = close ? (size_t)(close - v - 1) : 0;
        if (close && close[1] == ':' && n > 0 && n < sizeof(host)) {
            memcpy(host, v + 1, n);
            host[n] = '\0';
            port = close + 2;
            ok = inet_pton(AF_INET6, host, addr) == 1 && parse_port(port);
        }
    } else {
        const char *colon = strrchr(v, ':');
        size_t n = colon ? (size_t)(colon - v) : 0;
        if (colon && n > 0 && n < sizeof(host)) {
            memcpy(host, v, n);
            host[n] = '\0';
            port = colon + 1;
            ok = inet_pton(AF_INET, host, addr) == 1 && parse_port(port);
        }
    }
    if (!ok) {
        snprintf(why, whysz, "expected IPV4:PORT or [IPV6]:PORT with a port from 1 to 65535");
        return -EINVAL;
    }
    return replace_str(field, v);
}

/* An ACME directory URL. Plain http would let anyone on the path swap the directory (and with it
 * every endpoint we post signed requests to), so it is allowed only for a server on this host,
 * such as a local Pebble. */
static int parse_url(const struct key_def *def, const char *v, void *field, char *why, size_t whysz)
{
    const char *rest;
    bool https;
    if (strncmp(v, "https://", 8) == 0) {
        rest = v + 8;
        https = true;
    } else if (strncmp(v, "http://", 7) == 0) {
        rest = v + 7;
        https = false;
    } else {
        goto bad;
    }
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            goto bad;
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || memchr(rest, '@', alen))
        goto bad;
    size_t hlen;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', alen);
        if (!close)
            goto bad;
        hlen = (size_t)(close - rest) + 1;
    } else {
        const char *colon = memchr(rest, ':', alen);
        hlen = colon ? (size_t)(colon - rest) : alen;
    }
    if (hlen == 0)
        goto bad;
    if (hlen < alen) {
        char port[8];
        size_t plen = alen - hlen - 1;
        if (rest[hlen] != ':' || plen == 0 || plen >= sizeof(port))
            goto bad;
        memcpy(port, rest + hlen + 1, plen);
        port[plen] = '\0';
        if (!parse_port(port))
            goto bad;
    }
    if (!https) {
        static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
        bool local = false;
        for (size_t i = 0; i < ARRAY_SIZE(loopback); i++) {
            local |= strlen(loopback[i]) == hlen && strncasecmp(rest, loopback[i], hlen) == 0;
        }
        if (!local)
            goto bad;
    }
    return replace_str(field, v);
bad:
    snprintf(why, whysz,
             "expected an https:// URL (http:// only for 127.0.0.1, localhost or [::1])");
    return -EINVAL;
}

/* base64url (RFC 4648 §5), as CAs hand out EAB keys; '=' padding tolerated at the end. */
static int parse_secret(const struct key_def *def, const char *v, void *field, char *why,
                        size_t whysz)
{
    size_t n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    size_t pad = strspn(v + n, "=");
    if (n == 0 || v[n + pad] != '\0' || pad > 2) {
        snprintf(why, whysz, "expected a base64url-encoded key");
        return -EINVAL;
    }
    char *dup = strdup(v);
    if (!dup)
        return -ENOMEM;
    char **slot = field;
    if (*slot) {
        explicit_bzero(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = dup;
    return 0;
}

static int parse_hook(const struct key_def *def, const char *v, void *field, char *why,
                      size_t whysz)
{
    char **argv = NULL;
    size_t argc;
    char reason[128];
    int r = cmdline_split(v, &argv, &argc, reason, sizeof(reason));
    cmdline_free(argv);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        snprintf(why, whysz, "expected a command line: %s", reason);
        return -EINVAL;
    }
    return replace_str(field, v);
}

/* The fraction form of renew_before: "0.33" (a '.' is what tells it from a duration) or "33%" /
 * "33.5%", at most 3 digits before the point and 9 after, as sched/planner.c accepts. Decimal
 * digits only, no sign or exponent (strtod would take "inf", hex and the locale's decimal point).
 * Returns true when S has that form, with the value in *F (not range-checked). */
static bool parse_fraction(const char *s, double *f)
{
    uint64_t num = 0, den = 1;
    const char *p = s;
    size_t int_digits = 0, frac_digits = 0;

    for (; *p >= '0' && *p <= '9'; p++, int_digits++) {
        if (int_digits == 3)
            return false;
        num = num * 10 + (uint64_t)(*p - '0');
    }
    bool dot = *p == '.';
    if (dot) {
        for (p++; *p >= '0' && *p <= '9'; p++, frac_digits++) {
            if (frac_digits == 9)
                return false;
            num = num * 10 + (uint64_t)(*p - '0');
            den *= 10;
        }
        if (frac_digits == 0)
            return false;
    }
    bool percent = *p == '%';
    if (percent) {
        p++;
        den *= 100;
    }
    if (*p || (!dot && !percent) || int_digits == 0)
        return false;
    *f = (double)num / (double)den;
    return true;
}

/* [renewal] renew_before: kept as text, since sched/planner.h parses it
 * (planner_parse_renew_before) into the policy; checked here so a bad value stops certd at load
 * rather than at renewal. */
static int parse_renew_before(const struct key_def *def, const char *v, void *field, char *why,
                              size_t whysz)
{
    uint64_t secs = 0;
    double f = 0;
    bool ok;

    if (parse_fraction(v, &f))
        ok = f > 0 && f < 1;
    else
        ok = config_parse_duration(v, &secs) == 0 && secs > 0;
    if (!ok) {
        snprintf(why, whysz,
                 "expected a duration above 0 (a number with optional s, m, h or d) or a fraction "
                 "of the lifetime between 0 and 1 exclusive (\"0.33\" or \"33%%\")");
        return -EINVAL;
    }
    return replace_str(field, v);
}

/* A CA name as used in [ca.NAME], default_ca and the API: [a-z0-9][a-z0-9._-]{0,62}. */
static bool valid_ca_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int parse_ca_ref(const struct key_def *def, const char *v, void *field, char *why,
                        size_t whysz)
{
    if (!valid_ca_name(v)) {
        snprintf(why, whysz, "expected a CA name ([a-z0-9][a-z0-9._-]*, at most 63 characters)");
        return -EINVAL;
    }
    return replace_str(field, v); /* that it names a CA is checked once the file is read */
}

static void list_clear(struct config_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* Splits V on commas and whitespace; every item must pass VALID. An empty value is an empty
 * list (it clears a list set earlier, e.g. a predefined CA's). */
static int parse_list_with(const char *v, void *field, bool (*valid)(const char *), char *why,
                           size_t whysz, const char *expected)
{
    static const char seps[] = ", \t";
    struct config_list nl = {0};
    char *copy = strdup(v);
    int r = -ENOMEM;

    if (!copy)
        goto out;
    nl.items = calloc(CONFIG_MAX_LIST, sizeof(*nl.items));
    if (!nl.items)
        goto out;
    char *save = NULL;
    for (char *tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
        if (nl.count == CONFIG_MAX_LIST) {
            snprintf(why, whysz, "expected at most %d items", CONFIG_MAX_LIST);
            r = -EINVAL;
            goto out;
        }
        if (!valid(tok)) {
            snprintf(why, whysz, "item %zu: expected %s", nl.count + 1, expected);
            r = -EINVAL;
            goto out;
        }
        nl.items[nl.count] = strdup(tok);
        if (!nl.items[nl.count])
            goto out;
        nl.count++;
    }
    struct config_list *l = field;
    list_clear(l);
    *l = nl;
    nl = (struct config_list){0};
    r = 0;
out:
    list_clear(&nl);
    free(copy);
    return r;
}

/* RFC 8555 §7.3: account contacts are URLs; certd (like Let's Encrypt) takes mailto: only. */
static bool valid_mailto(const char *s)
{
    if (strncmp(s, "mailto:", 7) != 0 || has_ctl(s))
        return false;
    const char *addr = s + 7, *at = strchr(addr, '@');
    return at && at > addr && at[1] && !strchr(at + 1, '@') && !strpbrk(addr, "<>\"");
}

static int parse_contacts(const struct key_def *def, const char *v, void *field, char *why,
                          size_t whysz)
{
    return parse_list_with(v, field, valid_mailto, why, whysz,
                           "a mailto: URI such as mailto:admin@example.com");
}

static int parse_accounts(const struct key_def *def, const char *v, void *field, char *why,
                          size_t whysz)
{
    return parse_list_with(v, field, valid_account, why, whysz,
                           "a user or group name, or a numeric id");
}

/* ---- the keys ------------------------------------------------------------------------------- */

#define IN_CFG(m) .offset = offsetof(struct config, m)
#define IN_CA(m) .offset = offsetof(struct config_ca, m)
#define IN_DOMAIN(m) .offset = offsetof(struct config_domain, m)
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static const struct key_def keys[] = {
    {SEC_DAEMON, "state_dir", parse_path, IN_CFG(daemon.state_dir), .max = 4000},
    {SEC_DAEMON, "socket", parse_path, IN_CFG(daemon.socket), .max = SUN_PATH_MAX},
    {SEC_DAEMON, "socket_mode", parse_mode, IN_CFG(daemon.socket_mode), .max = 0777},
    {SEC_DAEMON, "socket_group", parse_account, IN_CFG(daemon.socket_group)},
    {SEC_DAEMON, "user", parse_account, IN_CFG(daemon.user)},
    {SEC_DAEMON, "log_level", parse_log_level, IN_CFG(daemon.log_level)},
    {SEC_DAEMON, "events_retention", parse_duration, IN_CFG(daemon.events_retention), .min = 3600,
     .max = 3650u * 24 * 3600},
    {SEC_DAEMON, "api_threads", parse_unsigned, IN_CFG(daemon.api_threads), .min = 0, .max = 16},

    {SEC_ACME, "default_ca", parse_ca_ref, IN_CFG(acme.default_ca)},
    {SEC_ACME, "contact", parse_contacts, IN_CFG(acme.contact)},
    {SEC_ACME, "account_key_type", parse_key_type, IN_CFG(acme.account_key_type)},
    {SEC_ACME, "max_concurrent_orders", parse_unsigned, IN_CFG(acme.max_concurrent_orders),
     .min = 1, .max = 64},

    {SEC_ACCESS, "admin_users", parse_accounts, IN_CFG(access.admin_users)},
    {SEC_ACCESS, "admin_groups", parse_accounts, IN_CFG(access.admin_groups)},
    {SEC_ACCESS, "deployer_users", parse_accounts, IN_CFG(access.deployer_users)},
    {SEC_ACCESS, "deployer_groups", parse_accounts, IN_CFG(access.deployer_groups)},
    {SEC_ACCESS, "reader_users", parse_accounts, IN_CFG(access.reader_users)},
    {SEC_ACCESS, "reader_groups", parse_accounts, IN_CFG(access.reader_groups)},

    {SEC_CA, "directory", parse_url, IN_CA(directory)},
    {SEC_CA, "ca_bundle", parse_path, IN_CA(ca_bundle), .max = 4000},
    {SEC_CA, "eab_kid", parse_string, IN_CA(eab_kid)},
    {SEC_CA, "eab_hmac_key", parse_secret, IN_CA(eab_hmac_key), .flags = KEY_NO_ECHO},
    {SEC_CA, "contact", parse_contacts, IN_CA(contact)},
    {SEC_CA, "terms_agreed", parse_bool, IN_CA(terms_agreed)},
    {SEC_CA, "preferred_chain", parse_string, IN_CA(preferred_chain)},
    {SEC_CA, "max_new_orders", parse_unsigned, IN_CA(max_new_orders), .min = 1, .max = 100000},

    {SEC_HTTP01, "listen", parse_listen, IN_CFG(challenge.http01_listen)},
    {SEC_DNS01, "hook", parse_hook, IN_CFG(challenge.dns01_hook), .flags = KEY_NO_ECHO | KEY_RAW},
    {SEC_DNS01, "timeout", parse_duration, IN_CFG(challenge.dns01_timeout), .min = 1, .max = 3600},
    {SEC_DNS01, "propagation_wait", parse_duration, IN_CFG(challenge.dns01_propagation_wait),
     .min = 0, .max = 3600},
    {SEC_TLSALPN01, "listen", parse_listen, IN_CFG(challenge.tlsalpn01_listen)},

    {SEC_RENEWAL, "renew_before", parse_renew_before, IN_CFG(renewal.renew_before)},
    {SEC_RENEWAL, "deploy_hook", parse_hook, IN_CFG(renewal.deploy_hook),
     .flags = KEY_NO_ECHO | KEY_RAW},
    {SEC_RENEWAL, "deploy_timeout", parse_duration, IN_CFG(renewal.deploy_timeout), .min = 1,
     .max = 3600},

    {SEC_DOMAIN, "deploy_hook", parse_hook, IN_DOMAIN(deploy_hook), .flags = KEY_NO_ECHO | KEY_RAW},

    {SEC_API_HTTPS, "listen", parse_listen, IN_CFG(https.listen)},
    {SEC_API_HTTPS, "cert", parse_path, IN_CFG(https.cert), .max = 4000},
    {SEC_API_HTTPS, "key", parse_path, IN_CFG(https.key), .max = 4000},
    {SEC_API_HTTPS, "client_ca", parse_path, IN_CFG(https.client_ca), .max = 4000},
};

/* ---- building and freeing ------------------------------------------------------------------- */

static void ca_clear(struct config_ca *ca)
{
    free(ca->name);
    free(ca->directory);
    free(ca->ca_bundle);
    free(ca->eab_kid);
    if (ca->eab_hmac_key) {
        explicit_bzero(ca->eab_hmac_key, strlen(ca->eab_hmac_key));
        free(ca->eab_hmac_key);
    }
    list_clear(&ca->contact);
    free(ca->preferred_chain);
    memset(ca, 0, sizeof(*ca));
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->daemon.state_dir);
    free(cfg->daemon.socket);
    free(cfg->daemon.socket_group);
    free(cfg->daemon.user);
    free(cfg->acme.default_ca);
    list_clear(&cfg->acme.contact);
    list_clear(&cfg->access.admin_users);
    list_clear(&cfg->access.admin_groups);
    list_clear(&cfg->access.deployer_users);
    list_clear(&cfg->access.deployer_groups);
    list_clear(&cfg->access.reader_users);
    list_clear(&cfg->access.reader_groups);
    free(cfg->https.listen);
    free(cfg->https.cert);
    free(cfg->https.key);
    free(cfg->https.client_ca);
    for (size_t i = 0; i < cfg->ca_count; i++)
        ca_clear(&cfg->cas[i]);
    free(cfg->cas);
    free(cfg->challenge.http01_listen);
    free(cfg->challenge.dns01_hook);
    free(cfg->challenge.tlsalpn01_listen);
    free(cfg->renewal.renew_before);
    free(cfg->renewal.deploy_hook);
    for (size_t i = 0; i < cfg->domain_count; i++) {
        free(cfg->domains[i].name);
        free(cfg->domains[i].deploy_hook);
    }
    free(cfg->domains);
    free(cfg);
}

const struct config_ca *config_find_ca(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->ca_count; i++) {
        if (strcmp(cfg->cas[i].name, name) == 0)
            return &cfg->cas[i];
    }
    return NULL;
}

const struct config_domain *config_find_domain(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->domain_count; i++) {
        if (strcmp(cfg->domains[i].name, name) == 0)
            return &cfg->domains[i];
    }
    return NULL;
}

/* Appends an empty CA called NAME; the array holds CONFIG_MAX_CAS from the start so pointers
 * into it stay valid. Returns its index, or -ENOSPC / -ENOMEM. */
static int ca_add(struct config *cfg, const char *name, const char *directory)
{
    if (cfg->ca_count == CONFIG_MAX_CAS)
        return -ENOSPC;
    struct config_ca *ca = &cfg->cas[cfg->ca_count];
    memset(ca, 0, sizeof(*ca));
    ca->name = strdup(name);
    ca->directory = directory ? strdup(directory) : NULL;
    ca->max_new_orders = 250;
    if (!ca->name || (directory && !ca->directory)) {
        ca_clear(ca);
        return -ENOMEM;
    }
    return (int)cfg->ca_count++;
}

int config_defaults(struct config **out)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    int r = -ENOMEM;

    *out = NULL;
    if (!cfg)
        return -ENOMEM;
    cfg->daemon.state_dir = strdup("/var/lib/certd");
    cfg->daemon.socket = strdup("/run/certd/api.sock");
    cfg->daemon.socket_mode = 0660;
    cfg->daemon.log_level = LOG_LVL_INFO;
    cfg->daemon.events_retention = 90u * 24 * 3600;
    cfg->acme.default_ca = strdup("letsencrypt");
    cfg->acme.account_key_type = KEY_EC_P256;
    cfg->acme.max_concurrent_orders = 4;
    cfg->challenge.dns01_timeout = 60;
    cfg->challenge.dns01_propagation_wait = 0;
    cfg->renewal.deploy_timeout = 300;
    cfg->cas = calloc(CONFIG_MAX_CAS, sizeof(*cfg->cas));
    if (!cfg->daemon.state_dir || !cfg->daemon.socket || !cfg->acme.default_ca || !cfg->cas)
        goto out;
    r = ca_add(cfg, "letsencrypt", "https://acme-v02.api.letsencrypt.org/directory");
    if (r >= 0)
        r = ca_add(cfg, "letsencrypt-staging",
                   "https://acme-staging-v02.api.letsencrypt.org/directory");
    if (r < 0)
        goto out;
    *out = cfg;
    cfg = NULL;
    r = 0;
out:
    config_free(cfg);
    return r;
}

/* ---- the parser ----------------------------------------------------------------------------- */

struct parse_ctx {
    const char *path;
    struct config *cfg;
    char *err;
    size_t errsz;

    enum section_kind sec; /* the section being read */
    size_t ca_index;       /* for SEC_CA */
    size_t domain_index;   /* for SEC_DOMAIN */
    char sec_name[96];     /* as written, for messages */
    bool seen_key[ARRAY_SIZE(keys)];

    unsigned sec_line[SEC_COUNT];     /* header line of each fixed section read, 0 = not yet */
    unsigned ca_line[CONFIG_MAX_CAS]; /* header line of each [ca.NAME], 0 = predefined only */
    unsigned default_ca_line;
    unsigned *domain_line; /* header line of each [domain.NAME], parallel to cfg->domains */
    size_t domain_cap;     /* allocated entries of cfg->domains and domain_line */
};

__attribute__((format(printf, 3, 4))) static int fail(struct parse_ctx *ctx, unsigned line,
                                                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line)
        snprintf(ctx->err, ctx->errsz, "%s:%u: %s", ctx->path, line, msg);
    else
        snprintf(ctx->err, ctx->errsz, "%s: %s", ctx->path, msg);
    return -EINVAL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* [domain.NAME]: NAME is matched against the store's normalised primary names, so it is
 * normalised the same way (A-labels, lower case) and duplicates are found after normalising. */
static int start_domain_section(struct parse_ctx *ctx, unsigned line, const char *raw_name)
{
    struct config *cfg = ctx->cfg;
    char name[NAME_BUF_SIZE], why[NAME_ERR_SIZE];

    if (name_normalize(raw_name, true, name, why) < 0)
        return fail(ctx, line, "invalid domain name '%.64s' in section header: %s", raw_name, why);
    const struct config_domain *d = config_find_domain(cfg, name);
    if (d)
        return fail(ctx, line, "duplicate section [domain.%s] (first at line %u)", name,
                    ctx->domain_line[d - cfg->domains]);
    if (cfg->domain_count == CONFIG_MAX_DOMAINS)
        return fail(ctx, line, "too many [domain.NAME] sections (at most %d)", CONFIG_MAX_DOMAINS);
    if (cfg->domain_count == ctx->domain_cap) {
        size_t cap = ctx->domain_cap ? ctx->domain_cap * 2 : 16;
        struct config_domain *nd = realloc(cfg->domains, cap * sizeof(*nd));
        if (!nd)
            goto nomem;
        cfg->domains = nd;
        unsigned *nl = realloc(ctx->domain_line, cap * sizeof(*nl));
        if (!nl)
            goto nomem;
        ctx->domain_line = nl;
        ctx->domain_cap = cap;
    }
    struct config_domain *nd = &cfg->domains[cfg->domain_count];
    memset(nd, 0, sizeof(*nd));
    nd->name = strdup(name);
    if (!nd->name)
        goto nomem;
    ctx->domain_line[cfg->domain_count] = line;
    ctx->domain_index = cfg->domain_count++;
    ctx->sec = SEC_DOMAIN;
    return 0;
nomem:
    fail(ctx, line, "out of memory");
    return -ENOMEM;
}

static int start_section(struct parse_ctx *ctx, unsigned line, const char *name)
{
    memset(ctx->seen_key, 0, sizeof(ctx->seen_key));
    ctx->sec = SEC_NONE;
    snprintf(ctx->sec_name, sizeof(ctx->sec_name), "%.64s", name);

    for (size_t i = 0; i < ARRAY_SIZE(fixed_sections); i++) {
        if (strcmp(name, fixed_sections[i].name) != 0)
            continue;
        enum section_kind k = fixed_sections[i].kind;
        if (ctx->sec_line[k])
            return fail(ctx, line, "duplicate section [%s] (first at line %u)", name,
                        ctx->sec_line[k]);
        ctx->sec_line[k] = line;
        ctx->sec = k;
        return 0;
    }
    if (strncmp(name, "challenge.", 10) == 0)
        return fail(ctx, line,
                    "unknown challenge type '%.64s' in section header (expected http-01, dns-01 "
                    "or tls-alpn-01)",
                    name + 10);
    if (strncmp(name, "ca.", 3) == 0) {
        const char *ca_name = name + 3;
        if (!valid_ca_name(ca_name))
            return fail(ctx, line,
                        "invalid CA name '%.64s' (expected [a-z0-9][a-z0-9._-]*, at most 63 "
                        "characters)",
                        ca_name);
        const struct config_ca *ca = config_find_ca(ctx->cfg, ca_name);
        int idx;
        if (ca) {
            idx = (int)(ca - ctx->cfg->cas);
            if (ctx->ca_line[idx])
                return fail(ctx, line, "duplicate section [%s] (first at line %u)", name,
                            ctx->ca_line[idx]);
        } else {
            idx = ca_add(ctx->cfg, ca_name, NULL);
            if (idx == -ENOSPC)
                return fail(ctx, line, "too many CAs (at most %d)", CONFIG_MAX_CAS);
            if (idx < 0)
                return idx;
        }
        ctx->ca_line[idx] = line;
        ctx->ca_index = (size_t)idx;
        ctx->sec = SEC_CA;
        return 0;
    }
    if (strncmp(name, "domain.", 7) == 0)
        return start_domain_section(ctx, line, name + 7);
    return fail(ctx, line,
                "unknown section [%.64s] (expected daemon, acme, access, ca.NAME, challenge.TYPE, "
                "renewal, domain.NAME or api.https)",
                name);
}

static int handle_key(struct parse_ctx *ctx, unsigned line, const char *key, char *value)
{
    const struct key_def *def = NULL;
    size_t idx = 0;

    if (ctx->sec == SEC_NONE)
        return fail(ctx, line, "key '%.64s' outside of any section", key);
    for (idx = 0; idx < ARRAY_SIZE(keys); idx++) {
        if (keys[idx].section == ctx->sec && strcmp(keys[idx].name, key) == 0) {
            def = &keys[idx];
            break;
        }
    }
    if (!def)
        return fail(ctx, line, "unknown key '%.64s' in section [%s]", key, ctx->sec_name);
    if (ctx->seen_key[idx])
        return fail(ctx, line, "duplicate key '%s' in section [%s]", key, ctx->sec_name);
    ctx->seen_key[idx] = true;

    size_t n = strlen(value);
    if (!(def->flags & KEY_RAW) && n > 0 && value[0] == '"') {
        if (n < 2 || value[n - 1] != '"')
            return fail(ctx, line, "%s in section [%s]: unterminated quoted value", key,
                        ctx->sec_name);
        value[n - 1] = '\0';
        value++;
    }

    void *base = ctx->cfg;
    if (def->section == SEC_CA)
        base = &ctx->cfg->cas[ctx->ca_index];
    else if (def->section == SEC_DOMAIN)
        base = &ctx->cfg->domains[ctx->domain_index];
    char why[256] = "";
    int r = def->parse(def, value, (char *)base + def->offset, why, sizeof(why));
    if (r == -EINVAL) {
        if (def->flags & KEY_NO_ECHO)
            return fail(ctx, line, "invalid value for %s in section [%s]: %s", key, ctx->sec_name,
                        why);
        return fail(ctx, line, "invalid value '%.*s%s' for %s in section [%s]: %s", ECHO_MAX, value,
                    strlen(value) > ECHO_MAX ? "..." : "", key, ctx->sec_name, why);
    }
    if (r < 0)
        return fail(ctx, line, "%s", strerror(-r));
    if (def->section == SEC_ACME && def->offset == offsetof(struct config, acme.default_ca))
        ctx->default_ca_line = line;
    return 0;
}

static int parse_line(struct parse_ctx *ctx, unsigned line, char *raw)
{
    char *s = trim(raw);

    if (!*s || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        size_t n = strlen(s);
        if (s[n - 1] != ']')
            return fail(ctx, line, "missing ']' at the end of the section header");
        s[n - 1] = '\0';
        return start_section(ctx, line, trim(s + 1));
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return fail(ctx, line, "expected 'key = value' or '[section]' (no '=' on this line)");
    *eq = '\0';
    char *key = trim(s);
    if (!*key)
        return fail(ctx, line, "missing key name before '='");
    return handle_key(ctx, line, key, trim(eq + 1));
}

/* Whole-file checks: what one line cannot tell. */
static int validate(struct parse_ctx *ctx)
{
    struct config *cfg = ctx->cfg;

    for (size_t i = 0; i < cfg->ca_count; i++) {
        const struct config_ca *ca = &cfg->cas[i];
        if (!ca->directory)
            return fail(ctx, ctx->ca_line[i], "section [ca.%s] needs a directory URL", ca->name);
        if (!ca->eab_kid != !ca->eab_hmac_key)
            return fail(ctx, ctx->ca_line[i],
                        "section [ca.%s]: eab_kid and eab_hmac_key go together (give both or "
                        "neither)",
                        ca->name);
    }
    /* A listener without its certificate and key cannot serve, and a certificate without a
     * listener is surely a forgotten line: either way the admin meant something else. */
    if (ctx->sec_line[SEC_API_HTTPS] &&
        (!cfg->https.listen || !cfg->https.cert || !cfg->https.key))
        return fail(ctx, ctx->sec_line[SEC_API_HTTPS],
                    "section [api.https] needs listen, cert and key (or leave the section out)");
    if (!config_find_ca(cfg, cfg->acme.default_ca))
        return fail(ctx, ctx->default_ca_line, "default_ca '%s' names no CA (define [ca.%s])",
                    cfg->acme.default_ca, cfg->acme.default_ca);
    return 0;
}

/* Reads at most CONFIG_MAX_FILE bytes of PATH into a NUL-terminated buffer. */
static int read_file(struct parse_ctx *ctx, char **buf_out, size_t *len_out)
{
    char ebuf[128];
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int r;

    int fd = open(ctx->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
        fail(ctx, 0, "cannot open: %s", strerror_r(-r, ebuf, sizeof(ebuf)));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        fail(ctx, 0, "cannot stat: %s", strerror_r(-r, ebuf, sizeof(ebuf)));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = fail(ctx, 0, "not a regular file");
        goto out;
    }
    /* One byte more than allowed, to notice a file that grew past the limit after fstat. */
    buf = malloc(CONFIG_MAX_FILE + 2);
    if (!buf) {
        r = -ENOMEM;
        fail(ctx, 0, "out of memory");
        goto out;
    }
    while (len <= CONFIG_MAX_FILE) {
        ssize_t n = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            fail(ctx, 0, "cannot read: %s", strerror_r(-r, ebuf, sizeof(ebuf)));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CONFIG_MAX_FILE) {
        r = -EFBIG;
        fail(ctx, 0, "larger than %d bytes", CONFIG_MAX_FILE);
        goto out;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
    r = 0;
out:
    free(buf);
    close(fd);
    return r;
}

int config_load(const char *path, struct config **out, char *err, size_t errsz)
{
    struct parse_ctx ctx = {.path = path ? path : "(null)", .err = err, .errsz = errsz};
    char *buf = NULL;
    size_t len = 0;
    char line[CONFIG_MAX_LINE + 1];
    int r;

    *out = NULL;
    if (err && errsz)
        err[0] = '\0';
    if (!path || !err || !errsz)
        return -EINVAL;
    r = config_defaults(&ctx.cfg);
    if (r < 0) {
        fail(&ctx, 0, "out of memory");
        return r;
    }
    ctx.cfg->path = strdup(path);
    if (!ctx.cfg->path) {
        fail(&ctx, 0, "out of memory");
        r = -ENOMEM;
        goto out;
    }
    r = read_file(&ctx, &buf, &len);
    if (r < 0)
        goto out;
    if (memchr(buf, '\0', len)) {
        r = fail(&ctx, 0, "contains a NUL byte (not a text file)");
        goto out;
    }

    unsigned lineno = 0;
    for (const char *p = buf; p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        lineno++;
        if (n > CONFIG_MAX_LINE) {
            r = fail(&ctx, lineno, "line longer than %d characters", CONFIG_MAX_LINE);
            goto out;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        r = parse_line(&ctx, lineno, line);
        if (r < 0)
            goto out;
        p += n + (nl ? 1 : 0);
    }
    r = validate(&ctx);
    if (r < 0)
        goto out;
    *out = ctx.cfg;
    ctx.cfg = NULL;
out:
    /* The file and the line copy may hold eab_hmac_key. */
    explicit_bzero(line, sizeof(line));
    free(ctx.domain_line);
    if (buf) {
        explicit_bzero(buf, len);
        free(buf);
    }
    config_free(ctx.cfg);
    return r;
}
