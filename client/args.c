#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "certctl.h"

void args_shift(struct cli_args *a)
{
    if (a->n <= 0)
        return;
    a->v++;
    a->n--;
    if (a->optend > 0)
        a->optend--;
    if (a->pos > 0)
        a->pos--;
}

bool args_is_option(const struct cli_args *a, int i)
{
    return i < a->optend && a->v[i][0] == '-' && a->v[i][1] != '\0';
}

enum args_result args_next(struct cli_args *a, const struct certctl *ctx,
                           const struct opt_spec *specs, int *which, const char **value)
{
    if (a->pos >= a->n)
        return ARGS_END;

    int i = a->pos++;
    const char *word = a->v[i];
    if (!args_is_option(a, i)) {
        *value = word;
        return ARGS_WORD;
    }

    const char *eq = strchr(word, '=');
    size_t namelen = eq ? (size_t)(eq - word) : strlen(word);
    for (int k = 0; specs && specs[k].name; k++) {
        if (strlen(specs[k].name) != namelen || strncmp(specs[k].name, word, namelen) != 0)
            continue;
        *which = k;
        if (!specs[k].has_arg) {
            if (eq) {
                usage_error(ctx, "option '%s' takes no value", specs[k].name);
                return ARGS_ERROR;
            }
            *value = NULL;
            return ARGS_OPTION;
        }
        if (eq) {
            *value = eq + 1;
        } else if (a->pos < a->n) {
            *value = a->v[a->pos++];
        } else {
            usage_error(ctx, "option '%s' needs a value", specs[k].name);
            return ARGS_ERROR;
        }
        return ARGS_OPTION;
    }
    usage_error(ctx, "unknown option '%s'", word);
    return ARGS_ERROR;
}

bool args_parse_long(const char *s, long min, long max, long *out)
{
    /* strtol would also take leading blanks and a '+'; a count on a command line is digits. */
    if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static const struct opt_spec no_opts[] = {{NULL, false}};

int args_none(struct cli_args *a, const struct certctl *ctx)
{
    int which;
    const char *val;
    enum args_result r = args_next(a, ctx, no_opts, &which, &val);
    if (r == ARGS_ERROR)
        return CERTCTL_EXIT_USAGE;
    if (r != ARGS_END)
        return usage_error(ctx, "unexpected argument '%s'", val);
    return CERTCTL_EXIT_OK;
}

int args_one(struct cli_args *a, const struct certctl *ctx, const char *what, const char **word)
{
    int which;
    const char *val;
    enum args_result r;

    *word = NULL;
    while ((r = args_next(a, ctx, no_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (*word)
            return usage_error(ctx, "unexpected argument '%s'", val);
        *word = val;
    }
    if (!*word)
        return usage_error(ctx, "missing %s", what);
    return CERTCTL_EXIT_OK;
}
