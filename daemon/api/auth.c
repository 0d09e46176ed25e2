/* The one place that decides who may call the API. The fleet work extends it with tokens and
 * the reader/deployer roles; every handler asks the role, never the credentials. */
#include "api/internal.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/names.h"
#include "core/confhold.h"
#include "store/store.h"
#include "core/config.h"

#define MAX_GROUPS 256

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

static bool group_listed(const struct config_list *groups, gid_t gid)
{
    char buf[8192];
    struct group gr, *res = NULL;
    const char *name = NULL;
    if (getgrgid_r(gid, &gr, buf, sizeof(buf), &res) == 0 && res)
        name = res->gr_name;
    return list_has(groups, name, gid);
}

static enum api_role decide_role(const struct config *cfg, const struct api_context *ctx,
                                 struct api_caller *c)
{
    char buf[8192];
    struct passwd pw, *pwres = NULL;
    const char *user = NULL;
    if (getpwuid_r(c->uid, &pw, buf, sizeof(buf), &pwres) == 0 && pwres)
        user = pwres->pw_name;
    snprintf(c->actor, sizeof(c->actor), "uid:%lu(%s)", (unsigned long)c->uid, user ? user : "?");

    if (c->uid == 0 || c->uid == ctx->daemon_uid)
        return ROLE_ADMIN;
    if (list_has(&cfg->access.admin_users, user, c->uid))
        return ROLE_ADMIN;
    if (cfg->access.admin_groups.count == 0)
        return ROLE_NONE;
    if (group_listed(&cfg->access.admin_groups, c->gid))
        return ROLE_ADMIN;
    /* Supplementary groups come from the group database, as for a login of that user:
     * SO_PEERCRED only carries the primary gid. */
    if (user) {
        gid_t groups[MAX_GROUPS];
        int n = MAX_GROUPS;
        if (getgrouplist(user, c->gid, groups, &n) < 0)
            n = MAX_GROUPS; /* truncated: check what fitted */
        for (int i = 0; i < n; i++) {
            if (group_listed(&cfg->access.admin_groups, groups[i]))
                return ROLE_ADMIN;
        }
    }
    return ROLE_NONE;
}

int api_auth_identify(struct api_request *req, struct api_caller *caller)
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

bool api_caller_sees(const struct api_caller *caller, const char *const *names, size_t count)
{
    if (!caller->scope_count)
        return true;
    for (size_t i = 0; i < caller->scope_count; i++) {
        for (size_t j = 0; j < count; j++) {
            if (strcmp(caller->scope[i], names[j]) == 0 ||
                name_wildcard_matches(caller->scope[i], names[j]))
                return true;
        }
    }
    return false;
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
