/* The one place that decides who may call the API: socket peers by uid/gid, HTTPS clients by
 * token. Every handler asks the role and the scope, never the credentials. */
#include "api/internal.h"

#include <errno.h>
#include <pthread.h>
#include <gnutls/gnutls.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/token.h"
#include "api/token_cache.h"
#include "common/names.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/store.h"

/* last_used_at is for operators ("is this token still in use?"): minute precision is plenty,
 * and a write per request would put every fleet poll on the database's write lock. */
#define TOKEN_TOUCH_INTERVAL_S 60
/* Longest Authorization header worth looking at: "Basic " + base64 of a short user name and a
 * token. Anything longer is not one of ours. */
#define AUTH_HEADER_MAX 512

const char *api_role_name(enum api_role role)
{
    switch (role) {
    case ROLE_ADMIN:
        return TOKEN_ROLE_ADMIN;
    case ROLE_DEPLOYER:
        return TOKEN_ROLE_DEPLOYER;
    case ROLE_READER:
        return TOKEN_ROLE_READER;
    default:
        return "none";
    }
}

void api_caller_clear(struct api_caller *caller)
{
    if (!caller)
        return;
    for (size_t i = 0; i < caller->scope_count; i++)
        free(caller->scope[i]);
    free(caller->scope);
    caller->scope = NULL;
    caller->scope_count = 0;
}

/* ---- unix socket: SO_PEERCRED and [access] ---- */

/* An [access] entry is a name or a numeric id. */
static bool entry_is_id(const char *entry, unsigned long id)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(entry, &end, 10);
    return *entry && !*end && errno == 0 && n == id;
}

static bool list_has(const struct config_list *l, const char *name, unsigned long id)
{
    for (size_t i = 0; i < l->count; i++) {
        if ((name && strcmp(l->items[i], name) == 0) || entry_is_id(l->items[i], id))
            return true;
    }
    return false;
}

/*
 * What the user and group databases say about a socket peer: its name and its groups with their
 * names. Looking them up opens /etc/passwd and /etc/group (or asks NSS) every time, which cost
 * more than the request itself on the delivery endpoints, so answers are kept for a short while.
 * Roles are still decided from the live configuration at every request, so a reload takes
 * effect at once; a change in the user databases takes effect within PEER_CACHE_TTL_S.
 */
#define PEER_CACHE_SLOTS 64
#define PEER_CACHE_TTL_S 10
#define PEER_NAME_MAX 64
/* Groups of one peer that roles are looked for in; a user in more is judged by the first. */
#define PEER_GROUPS_MAX 64

struct peer_info {
    uid_t uid;
    gid_t gid;
    int64_t fetched_at;                  /* 0: empty slot */
    bool has_user;
    char user[PEER_NAME_MAX];
    int ngroups;
    gid_t groups[PEER_GROUPS_MAX];
    char group_names[PEER_GROUPS_MAX][PEER_NAME_MAX]; /* "" when the group has no name */
};

static pthread_mutex_t peer_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer_info peer_cache[PEER_CACHE_SLOTS];

static void peer_lookup(uid_t uid, gid_t gid, struct peer_info *out)
{
    char buf[8192];
    struct passwd pw, *pwres = NULL;
    memset(out, 0, sizeof(*out));
    out->uid = uid;
    out->gid = gid;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwres) == 0 && pwres &&
        strlen(pwres->pw_name) < PEER_NAME_MAX) {
        out->has_user = true;
        memcpy(out->user, pwres->pw_name, strlen(pwres->pw_name) + 1);
    }
    /* The primary gid from SO_PEERCRED, then the supplementary groups from the group database,
     * as for a login of that user (SO_PEERCRED carries only the primary gid). */
    out->ngroups = 1;
    out->groups[0] = gid;
    if (out->has_user) {
        int n = PEER_GROUPS_MAX;
        if (getgrouplist(out->user, gid, out->groups, &n) < 0)
            n = PEER_GROUPS_MAX; /* truncated: keep what fitted */
        out->ngroups = n;
    }
    for (int i = 0; i < out->ngroups; i++) {
        struct group gr, *res = NULL;
        if (getgrgid_r(out->groups[i], &gr, buf, sizeof(buf), &res) == 0 && res &&
            strlen(res->gr_name) < PEER_NAME_MAX)
            memcpy(out->group_names[i], res->gr_name, strlen(res->gr_name) + 1);
    }
    out->fetched_at = clock_now();
}

/* Fills OUT for the peer, from the cache when fresh. */
static void peer_info_get(uid_t uid, gid_t gid, struct peer_info *out)
{
    int64_t now = clock_now();
    size_t slot = ((size_t)uid * 2654435761u + gid) % PEER_CACHE_SLOTS;
    pthread_mutex_lock(&peer_cache_lock);
    struct peer_info *e = &peer_cache[slot];
    bool fresh = e->fetched_at && e->uid == uid && e->gid == gid &&
                 now - e->fetched_at < PEER_CACHE_TTL_S && now >= e->fetched_at;
    if (fresh)
        *out = *e;
    pthread_mutex_unlock(&peer_cache_lock);
    if (fresh)
        return;
    peer_lookup(uid, gid, out);
    pthread_mutex_lock(&peer_cache_lock);
    peer_cache[slot] = *out;
    pthread_mutex_unlock(&peer_cache_lock);
}

/* Whether the peer is in USERS, or any of its groups in GROUP_LIST. */
static bool role_listed(const struct config_list *users, const struct config_list *group_list,
                        const struct peer_info *p)
{
    if (list_has(users, p->has_user ? p->user : NULL, p->uid))
        return true;
    for (int i = 0; group_list->count && i < p->ngroups; i++) {
        if (list_has(group_list, p->group_names[i][0] ? p->group_names[i] : NULL,
                     p->groups[i]))
            return true;
    }
    return false;
}

static enum api_role decide_role(const struct config *cfg, const struct api_context *ctx,
                                 struct api_caller *c)
{
    struct peer_info p;
    peer_info_get(c->uid, c->gid, &p);
    snprintf(c->actor, sizeof(c->actor), "uid:%lu(%s)", (unsigned long)c->uid,
             p.has_user ? p.user : "?");

    if (c->uid == 0 || c->uid == ctx->daemon_uid)
        return ROLE_ADMIN;
    /* The highest role granted wins. */
    if (role_listed(&cfg->access.admin_users, &cfg->access.admin_groups, &p))
        return ROLE_ADMIN;
    if (role_listed(&cfg->access.deployer_users, &cfg->access.deployer_groups, &p))
        return ROLE_DEPLOYER;
    if (role_listed(&cfg->access.reader_users, &cfg->access.reader_groups, &p))
        return ROLE_READER;
    return ROLE_NONE;
}

static int identify_socket_peer(struct api_request *req, struct api_caller *caller)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return -ENOTCONN;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    caller->pid = cred.pid;
    caller->uid = cred.uid;
    caller->gid = cred.gid;
    caller->role = decide_role(req->config, req->ctx, caller);
    return 0;
}

/* ---- HTTPS: tokens ---- */

static enum api_role role_from_name(const char *s)
{
    if (s && strcmp(s, TOKEN_ROLE_ADMIN) == 0)
        return ROLE_ADMIN;
    if (s && strcmp(s, TOKEN_ROLE_DEPLOYER) == 0)
        return ROLE_DEPLOYER;
    if (s && strcmp(s, TOKEN_ROLE_READER) == 0)
        return ROLE_READER;
    return ROLE_NONE;
}

/*
 * The token the request carries, copied to OUT (wipe it after use): from "Authorization: Bearer
 * TOKEN" or as the password of "Authorization: Basic" (any user name). Returns 0, -ENOENT when
 * there are no credentials, -EINVAL when they are not of a form we take.
 */
static int request_token(struct api_request *req, char out[TOKEN_LEN + 1])
{
    const char *h =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    out[0] = '\0';
    if (!h)
        return -ENOENT;
    if (strnlen(h, AUTH_HEADER_MAX + 1) > AUTH_HEADER_MAX)
        return -EINVAL;
    /* RFC 6750 §2.1: the scheme is case-insensitive. */
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        const char *t = h + 7;
        while (*t == ' ')
            t++;
        size_t n = strcspn(t, " ");
        if (n != TOKEN_LEN || t[n] != '\0')
            return -EINVAL;
        memcpy(out, t, TOKEN_LEN);
        out[TOKEN_LEN] = '\0';
        return 0;
    }
    if (strncasecmp(h, "Basic ", 6) == 0) {
        /* RFC 7617: base64 of "user:password"; libmicrohttpd decodes it. */
        char *password = NULL;
        char *user = MHD_basic_auth_get_username_password(req->conn, &password);
        int ret = -EINVAL;
        if (password && strlen(password) == TOKEN_LEN) {
            memcpy(out, password, TOKEN_LEN + 1);
            ret = 0;
        }
        if (password) {
            gnutls_memset(password, 0, strlen(password));
            MHD_free(password);
        }
        if (user)
            MHD_free(user);
        return ret;
    }
    return -EINVAL;
}

/* Whether the TLS session's client certificate verifies against [api.https] client_ca (the trust
 * list libmicrohttpd loaded): RFC 5280 path validation including validity dates. */
static bool client_cert_ok(struct api_request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t session = (gnutls_session_t)ci->tls_session;
    unsigned int status = 0;
    if (gnutls_certificate_type_get(session) != GNUTLS_CRT_X509)
        return false;
    /* GNUTLS_E_NO_CERTIFICATE_FOUND when the client sent none. */
    return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

/* Counts a failure of the client against its address and logs it (never the token). */
static void auth_failed(struct api_request *req, const char *why)
{
    log_warning("authentication failed from %s (%s)", req->peer, why);
    if (auth_limiter_fail(req->remote->limiter, req->peer, clock_monotonic_ms()))
        log_warning("too many failed authentications from %s: refusing it for a while (429)",
                    req->peer);
}

static int identify_token(struct api_request *req, struct api_caller *caller)
{
    char text[TOKEN_LEN + 1], id[TOKEN_ID_LEN + 1], secret[TOKEN_SECRET_LEN + 1];
    char why[96];
    struct token_view t = {0};
    int ret = -EACCES;

    caller->pid = 0;
    caller->uid = (uid_t)-1;
    caller->gid = (gid_t)-1;
    caller->role = ROLE_NONE;
    snprintf(caller->actor, sizeof(caller->actor), "remote:%s", req->peer);
    secret[0] = '\0';

    int64_t now_ms = clock_monotonic_ms();
    if (!auth_limiter_allowed(req->remote->limiter, req->peer, now_ms, NULL)) {
        log_debug("refusing %s: too many failed authentications", req->peer);
        ret = -EAGAIN;
        goto out;
    }
    if (req->remote->verify_client_cert && !client_cert_ok(req)) {
        auth_failed(req, "no client certificate signed by client_ca");
        ret = -EPERM;
        goto out;
    }
    int e = request_token(req, text);
    if (e == -ENOENT) {
        auth_failed(req, "no credentials");
        goto out;
    }
    if (e < 0 || token_parse(text, id, secret) < 0) {
        auth_failed(req, "malformed credentials");
        goto out;
    }
    e = token_cache_get(req->remote->tokens, req->ctx->store, id, now_ms, &t);
    if (e == -ENOENT) {
        snprintf(why, sizeof(why), "unknown token id %s", id);
        auth_failed(req, why);
        goto out;
    }
    if (e == -EINVAL) {
        log_error("token %s has an unreadable row; refusing it", id);
        goto out;
    }
    if (e < 0) {
        log_error("cannot read token %s: %s", id, strerror(-e));
        ret = e == -ENOMEM ? -ENOMEM : -EIO;
        goto out;
    }
    int64_t now = clock_now();
    const char *bad = NULL;
    /* The secret is checked first, so the log never confirms that a guessed id is revoked. */
    if (!token_secret_matches(secret, t.salt, t.hash))
        bad = "wrong secret";
    else if (t.revoked_at)
        bad = "revoked";
    else if (t.expires_at && t.expires_at <= now)
        bad = "expired";
    else if (role_from_name(t.role) == ROLE_NONE)
        bad = "unknown role";
    if (bad) {
        snprintf(why, sizeof(why), "token id %s: %s", id, bad);
        auth_failed(req, why);
        goto out;
    }
    caller->role = role_from_name(t.role);
    caller->scope = t.scope; /* moved: the request owns it from here */
    caller->scope_count = t.scope_count;
    t.scope = NULL;
    t.scope_count = 0;
    snprintf(caller->actor, sizeof(caller->actor), "token:%s(%s)", t.id, t.name);
    if (token_cache_touch_due(req->remote->tokens, t.id, now, TOKEN_TOUCH_INTERVAL_S))
        store_token_touch(req->ctx->store, t.id, now);
    ret = 0;
out:
    gnutls_memset(text, 0, sizeof(text));
    gnutls_memset(secret, 0, sizeof(secret));
    token_view_clear(&t);
    return ret;
}

int api_auth_identify(struct api_request *req, struct api_caller *caller)
{
    return req->remote ? identify_token(req, caller) : identify_socket_peer(req, caller);
}

enum MHD_Result api_auth_refuse(struct api_request *req, int err)
{
    enum problem_kind kind;
    const char *detail;
    const char *hname = NULL;
    char hvalue[64] = "";
    unsigned retry = 0;

    if (!req->remote) /* the socket never refuses this way: a peer is its uid */
        return MHD_NO;
    switch (err) {
    case -EAGAIN:
        kind = PROBLEM_TOO_MANY_REQUESTS;
        detail = "too many failed authentications from this address; try again later";
        if (auth_limiter_allowed(req->remote->limiter, req->peer, clock_monotonic_ms(), &retry))
            retry = 1;
        hname = MHD_HTTP_HEADER_RETRY_AFTER;
        snprintf(hvalue, sizeof(hvalue), "%u", retry);
        break;
    case -EPERM:
        kind = PROBLEM_FORBIDDEN;
        detail = "a client certificate signed by the listener's client_ca is required";
        break;
    default:
        kind = PROBLEM_UNAUTHORIZED;
        detail = "a valid token is required (Authorization: Bearer TOKEN, or TOKEN as the Basic "
                 "password)";
        /* RFC 6750 §3 */
        hname = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        snprintf(hvalue, sizeof(hvalue), "Bearer realm=\"certd\"");
        break;
    }
    json_t *p = problem_new(kind, "%s", detail);
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hname)
        MHD_add_response_header(resp, hname, hvalue);
    enum MHD_Result rc = MHD_queue_response(req->conn, problem_status(kind), resp);
    MHD_destroy_response(resp);
    return rc;
}

bool api_caller_sees(const struct api_caller *caller, const char *const *names, size_t count)
{
    if (!caller->scope_count)
        return true;
    /* Every name must be covered: a certificate (and its key) for a.example.com and
     * b.example.com lets its holder answer for both, so a caller scoped to one of them only
     * must not get it. */
    for (size_t j = 0; j < count; j++) {
        bool covered = false;
        for (size_t i = 0; i < caller->scope_count && !covered; i++)
            covered = strcmp(caller->scope[i], names[j]) == 0 ||
                      name_wildcard_matches(caller->scope[i], names[j]);
        if (!covered)
            return false;
    }
    return count > 0;
}

bool api_caller_sees_domain(const struct api_caller *caller, const struct store_domain *d)
{
    if (!caller->scope_count)
        return true;
    const char *names[NAMES_MAX];
    size_t n = 0;
    names[n++] = d->name;
    for (size_t i = 0; i < d->alt_count && n < NAMES_MAX; i++)
        names[n++] = d->alt_names[i];
    return api_caller_sees(caller, names, n);
}
