/* certctl: command-line client for the certd API. main takes the global options out of the
 * command line (they may appear anywhere), finds the command in the table and runs it. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certctl.h"
#include "http.h"

static const char top_usage_head[] =
    "Usage: certctl [--socket PATH | --url URL [--token-file F] [--ca-file F]] [--json]\n"
    "               COMMAND [ARGS...]\n"
    "\n"
    "Command-line client for certd, the certificate management daemon.\n"
    "\n"
    "Commands:\n";
static const char top_usage_tail[] =
    "  help [COMMAND...]    Show help for a command\n"
    "\n"
    "Global options (accepted anywhere on the command line):\n"
    "  --socket PATH        certd's API socket (default: $CERTD_SOCKET, else\n"
    "                       " CERTCTL_DEFAULT_SOCKET ")\n"
    "  --url URL            certd's HTTPS listener (https://HOST:PORT) instead of the\n"
    "                       socket (default: $CERTD_URL)\n"
    "  --token-file FILE    File holding the bearer token for --url (default:\n"
    "                       $CERTD_TOKEN_FILE)\n"
    "  --ca-file FILE       CA bundle that verifies --url's certificate (default:\n"
    "                       $CERTD_CA_FILE, else the system's roots)\n"
    "  --json               Print the API's JSON response instead of tables\n"
    "  -h, --help           Show help for the command given (or this text)\n"
    "  --version            Show certctl's version\n"
    "  --                   End of options: the words after it are never options\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  certd refused the request or the operation failed\n"
    "  2  usage error (unknown command or option, missing or bad argument)\n"
    "  3  certd cannot be reached (socket missing, connection refused, permission denied)\n"
    "  4  a --wait timed out\n"
    "  5  a command on several items succeeded only for some\n"
    "\n"
    "Run 'certctl COMMAND --help' for a command's options.\n";

static const struct command *const top_commands[] = {
    &cmd_status, &cmd_domain,  &cmd_renew, &cmd_cert, &cmd_order, &cmd_history,
    &cmd_events, &cmd_account, &cmd_token, &cmd_sync, NULL,
};

void errmsg(const char *fmt, ...)
{
    va_list ap;
    fputs("certctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int usage_error(const struct certctl *ctx, const char *fmt, ...)
{
    va_list ap;
    fputs("certctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (ctx && ctx->cmd_path && ctx->cmd_path[0])
        fprintf(stderr, "\ntry 'certctl %s --help'\n", ctx->cmd_path);
    else
        fputs("\ntry 'certctl --help'\n", stderr);
    return CERTCTL_EXIT_USAGE;
}

static const struct command *find_command(const struct command *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++) {
        if (strcmp(list[i]->name, name) == 0)
            return list[i];
    }
    return NULL;
}

static void print_usage(const struct command *cmd)
{
    if (cmd) {
        fputs(cmd->usage, stdout);
        return;
    }
    fputs(top_usage_head, stdout);
    for (size_t i = 0; top_commands[i]; i++)
        printf("  %-19s  %s\n", top_commands[i]->name, top_commands[i]->summary);
    fputs(top_usage_tail, stdout);
}

/* Appends WORD to the command path in CTX (kept in PATHBUF) for usage hints. */
static void push_cmd_path(struct certctl *ctx, char *pathbuf, size_t pathsz, const char *word)
{
    size_t len = strlen(pathbuf);
    snprintf(pathbuf + len, pathsz - len, "%s%s", len ? " " : "", word);
    ctx->cmd_path = pathbuf;
}

/*
 * --help or "help": prints the help of the deepest command the words in ARGS name. Words that are
 * options are skipped, and the walk stops at a leaf command (whose arguments may follow).
 */
static int run_help(struct certctl *ctx, struct cli_args *args, char *pathbuf, size_t pathsz)
{
    const struct command *cur = NULL;
    const struct command *const *level = top_commands;

    for (int i = 0; i < args->n; i++) {
        if (args_is_option(args, i))
            continue;
        if (!level)
            break;
        const struct command *next = find_command(level, args->v[i]);
        if (!next) {
            if (cur)
                return usage_error(ctx, "unknown %s subcommand '%s'", cur->name, args->v[i]);
            return usage_error(ctx, "unknown command '%s'", args->v[i]);
        }
        cur = next;
        push_cmd_path(ctx, pathbuf, pathsz, cur->name);
        level = cur->subs;
    }
    print_usage(cur);
    return CERTCTL_EXIT_OK;
}

/* Tokens are short; anything bigger is not a token file. */
#define TOKEN_MAX 1024

/* Reads the token in PATH into BUF (NUL-terminated, surrounding whitespace dropped). Returns 0,
 * or a negative errno after reporting. */
static int read_token(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        errmsg("cannot read token file %s: %s", path, strerror(e));
        return -e;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, bufsz - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errmsg("cannot read token file %s: %s", path, strerror(e));
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == bufsz - 1) {
            close(fd);
            errmsg("token file %s is too large", path);
            return -EFBIG;
        }
    }
    close(fd);
    buf[len] = '\0';
    while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
        buf[--len] = '\0';
    size_t skip = strspn(buf, " \t\r\n");
    memmove(buf, buf + skip, len - skip + 1);
    if (!buf[0] || strpbrk(buf, " \t\r\n")) {
        errmsg("token file %s does not hold one token", path);
        return -EINVAL;
    }
    return 0;
}

static int run(struct certctl *ctx, struct cli_args *args, char *pathbuf, size_t pathsz)
{
    const struct command *cur = NULL;
    const struct command *const *level = top_commands;

    for (;;) {
        if (args->n == 0 || args_is_option(args, 0)) {
            if (args->n > 0) {
                /* An option before any command word can only be one we do not know. */
                return usage_error(ctx, "unknown option '%s'", args->v[0]);
            }
            if (cur)
                return usage_error(ctx, "missing %s subcommand", cur->name);
            return usage_error(ctx, "missing command");
        }
        const struct command *next = find_command(level, args->v[0]);
        if (!next) {
            if (cur)
                return usage_error(ctx, "unknown %s subcommand '%s'", cur->name, args->v[0]);
            return usage_error(ctx, "unknown command '%s'", args->v[0]);
        }
        cur = next;
        push_cmd_path(ctx, pathbuf, pathsz, cur->name);
        args_shift(args);
        if (!cur->subs)
            break;
        level = cur->subs;
    }

    char token[TOKEN_MAX];
    struct http_config cfg = {
        .socket_path = ctx->socket_path, .url = ctx->url, .ca_file = ctx->ca_file};
    if (ctx->url && ctx->token_file) {
        if (read_token(ctx->token_file, token, sizeof(token)) < 0) {
            explicit_bzero(token, sizeof(token));
            return CERTCTL_EXIT_USAGE;
        }
        cfg.token = token;
    }
    int rc = http_client_new(&cfg, &ctx->http);
    explicit_bzero(token, sizeof(token));
    if (rc < 0) {
        errmsg("out of memory");
        return CERTCTL_EXIT_FAILED;
    }
    int ret = cur->run(ctx, args);
    http_client_free(ctx->http);
    ctx->http = NULL;
    return ret;
}

/* A global option NAME taking a non-empty value, as "NAME VALUE" or "NAME=VALUE" at ARGV[*I]:
 * returns 1 with *DST set (and *I past the value), 0 when ARGV[*I] is not NAME, -1 after
 * reporting a usage error. */
static int global_value(const char *name, int argc, char **argv, int *i, const char **dst)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, name, len) != 0 || (a[len] != '\0' && a[len] != '='))
        return 0;
    if (a[len] == '=') {
        *dst = a + len + 1;
    } else if (*i + 1 >= argc) {
        usage_error(NULL, "option '%s' needs a value", name);
        return -1;
    } else {
        *dst = argv[++*i];
    }
    if (!(*dst)[0]) {
        usage_error(NULL, "option '%s' needs a non-empty value", name);
        return -1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    struct certctl ctx = {.cmd_path = ""};
    struct cli_args args = {0};
    char pathbuf[128] = "";
    bool help = false, version = false, after_dd = false;
    const char *socket_opt = NULL;
    int m;
    int ret;

    /* args.v moves as commands shift words off; WORDS keeps the allocation. */
    char **words = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*words));
    if (!words) {
        errmsg("out of memory");
        return CERTCTL_EXIT_FAILED;
    }
    args.v = words;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (after_dd) {
            args.v[args.n++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            after_dd = true;
        } else if (strcmp(a, "--json") == 0) {
            ctx.json = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help = true;
        } else if (strcmp(a, "--version") == 0) {
            version = true;
        } else if (strcmp(a, "--socket") == 0) {
            if (i + 1 >= argc) {
                ret = usage_error(NULL, "option '--socket' needs a value");
                goto out;
            }
            socket_opt = argv[++i];
        } else if (strncmp(a, "--socket=", strlen("--socket=")) == 0) {
            socket_opt = a + strlen("--socket=");
        } else if ((m = global_value("--url", argc, argv, &i, &ctx.url)) ||
                   (m = global_value("--token-file", argc, argv, &i, &ctx.token_file)) ||
                   (m = global_value("--ca-file", argc, argv, &i, &ctx.ca_file))) {
            if (m < 0) {
                ret = CERTCTL_EXIT_USAGE;
                goto out;
            }
        } else {
            args.v[args.n++] = argv[i];
        }
        if (!after_dd)
            args.optend = args.n;
    }
    if (!after_dd)
        args.optend = args.n;

    if (socket_opt && socket_opt[0] == '\0') {
        ret = usage_error(NULL, "option '--socket' needs a non-empty path");
        goto out;
    }
    ctx.socket_path = socket_opt;
    if (!ctx.socket_path) {
        const char *env = getenv("CERTD_SOCKET");
        ctx.socket_path = env && env[0] ? env : CERTCTL_DEFAULT_SOCKET;
    }

    if (!ctx.url) {
        const char *env = getenv("CERTD_URL");
        ctx.url = env && env[0] ? env : NULL;
    }
    if (!ctx.token_file) {
        const char *env = getenv("CERTD_TOKEN_FILE");
        ctx.token_file = env && env[0] ? env : NULL;
    }
    if (!ctx.ca_file) {
        const char *env = getenv("CERTD_CA_FILE");
        ctx.ca_file = env && env[0] ? env : NULL;
    }
    if (ctx.url && strncmp(ctx.url, "https://", strlen("https://")) != 0) {
        ret = usage_error(NULL, "--url must be an https:// URL");
        goto out;
    }

    if (help || (args.n > 0 && args.optend > 0 && strcmp(args.v[0], "help") == 0)) {
        if (!help)
            args_shift(&args);
        ret = run_help(&ctx, &args, pathbuf, sizeof(pathbuf));
        goto out;
    }
    if (version) {
        printf("certctl %s\n", CERTD_VERSION);
        ret = CERTCTL_EXIT_OK;
        goto out;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        errmsg("cannot initialise libcurl");
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    ret = run(&ctx, &args, pathbuf, sizeof(pathbuf));
    curl_global_cleanup();
out:
    /* Output that could not be written (full disk, closed pipe) is a failure, not a success. */
    if (fflush(stdout) == EOF || ferror(stdout)) {
        if (ret == CERTCTL_EXIT_OK) {
            errmsg("cannot write output");
            ret = CERTCTL_EXIT_FAILED;
        }
    }
    free(words);
    return ret;
}
