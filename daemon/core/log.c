#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static _Atomic int current_level = LOG_LVL_INFO;

static const char *const level_names[] = {
    [LOG_LVL_ERR] = "error", [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
    [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
};

bool log_level_parse(const char *s, enum log_level *out)
{
    for (int l = LOG_LVL_ERR; l <= LOG_LVL_DEBUG; l++) {
        if (strcmp(s, level_names[l]) == 0) {
            *out = (enum log_level)l;
            return true;
        }
    }
    return false;
}

const char *log_level_name(enum log_level l)
{
    return l >= LOG_LVL_ERR && l <= LOG_LVL_DEBUG ? level_names[l] : "unknown";
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&current_level);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;

    /* Build the whole line first and emit it with one write, so lines from several threads
     * never interleave; long messages are cut rather than split into two records. */
    char line[2048];
    int prefix = snprintf(line, sizeof(line), "<%d>", (int)level);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + prefix, sizeof(line) - (size_t)prefix - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)prefix;
    if (n > 0)
        len += (size_t)n < sizeof(line) - (size_t)prefix - 1 ? (size_t)n
                                                              : sizeof(line) - (size_t)prefix - 2;
    for (size_t i = (size_t)prefix; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
