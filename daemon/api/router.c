/* The route table. Every path the API serves is here, so the 404/405 answers and the Allow
 * header come from one place. */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
    const char *method;
    const char *pattern;    /* segments; "{}" matches one non-empty segment */
    api_handler handler;
    enum api_role min_role;
};

/* Roles (auth.c decides them): readers get state and certificates, deployers keys too (and the
 * delivery endpoints), admins everything else: every change, accounts, tokens, revocation. The
 * scope of a scoped caller is enforced by the handlers, which answer 404 outside it. */
static const struct route routes[] = {
    {"GET", "/v1/health", h_health, ROLE_READER},
    {"GET", "/v1/domains", h_domains_list, ROLE_READER},
    {"POST", "/v1/domains", h_domains_create, ROLE_ADMIN},
    {"GET", "/v1/domains/{}", h_domain_get, ROLE_READER},
    {"PATCH", "/v1/domains/{}", h_domain_patch, ROLE_ADMIN},
    {"DELETE", "/v1/domains/{}", h_domain_delete, ROLE_ADMIN},
    {"GET", "/v1/domains/{}/history", h_domain_history, ROLE_READER},
    {"POST", "/v1/domains/{}/renew", h_domain_renew, ROLE_ADMIN},
    {"GET", "/v1/domains/{}/certificate", h_domain_certificate, ROLE_READER},
    {"GET", "/v1/domains/{}/key", h_domain_key, ROLE_DEPLOYER},
    {"GET", "/v1/domains/{}/order", h_domain_order, ROLE_READER},
    {"GET", "/v1/domains/{}/bundle", h_domain_bundle, ROLE_DEPLOYER},
    {"GET", "/v1/sni", h_sni, ROLE_DEPLOYER},
    {"GET", "/v1/challenges/http-01/{}", h_challenge_http01, ROLE_READER},
    {"POST", "/v1/certificates/{}/revoke", h_certificate_revoke, ROLE_ADMIN},
    {"GET", "/v1/accounts", h_accounts_list, ROLE_ADMIN},
    {"GET", "/v1/accounts/{}", h_account_get, ROLE_ADMIN},
    {"POST", "/v1/accounts/{}", h_account_register, ROLE_ADMIN},
    {"POST", "/v1/accounts/{}/rollover", h_account_rollover, ROLE_ADMIN},
    {"POST", "/v1/accounts/{}/deactivate", h_account_deactivate, ROLE_ADMIN},
    {"GET", "/v1/events", h_events_list, ROLE_READER},
    {"GET", "/v1/tokens", h_tokens_list, ROLE_ADMIN},
    {"POST", "/v1/tokens", h_tokens_create, ROLE_ADMIN},
    {"DELETE", "/v1/tokens/{}", h_token_revoke, ROLE_ADMIN},
};

/* Matches PATH against PATTERN; on success the "{}" segment (at most one) is copied to PARAM. */
static bool path_match(const char *pattern, const char *path, char *param, size_t paramsz)
{
    param[0] = '\0';
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (len == 0 || len >= paramsz)
                return false;
            memcpy(param, path, len);
            param[len] = '\0';
            path += len;
            pattern += 2;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

enum MHD_Result api_route(struct api_request *req)
{
    /* A name's longest legal form, percent-decoding aside, fits with room for junk we refuse. */
    char param[1024];
    char allow[128] = "";
    const struct route *hit = NULL;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!path_match(routes[i].pattern, req->path, param, sizeof(param)))
            continue;
        if (strcmp(routes[i].method, req->method) == 0) {
            hit = &routes[i];
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", routes[i].method);
    }

    if (!hit && allow[0]) {
        json_t *p = problem_new(PROBLEM_METHOD_NOT_ALLOWED, "%s is not allowed on %s; allowed: %s",
                                req->method, req->path, allow);
        struct MHD_Response *resp;
        char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
        json_decref(p);
        if (!text)
            return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        enum MHD_Result rc = MHD_queue_response(req->conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (!hit)
        return api_respond_problem(req, PROBLEM_NOT_FOUND, "no such resource: %s", req->path);
    if (req->caller.role < hit->min_role)
        return api_respond_problem(req, PROBLEM_FORBIDDEN, "%s may not %s %s", req->caller.actor,
                                   req->method, req->path);
    return hit->handler(req, param[0] ? param : NULL);
}
