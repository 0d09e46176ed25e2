/* Logging to stderr with sd-daemon "<N>" priority prefixes, which journald turns into levels.
 * One line per message; newlines inside a message are replaced so a line is always one record.
 * Never pass key material or tokens to these functions. */
#ifndef CERTD_CORE_LOG_H
#define CERTD_CORE_LOG_H

#include <stdbool.h>

/* syslog priorities */
enum log_level {
    LOG_LVL_ERR = 3,
    LOG_LVL_WARNING = 4,
    LOG_LVL_NOTICE = 5,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7,
};

/* "error", "warning", "notice", "info", "debug". */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);

/* Messages above LEVEL are dropped. Thread-safe; takes effect at once (SIGHUP). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
