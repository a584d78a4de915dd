#ifndef RL_LOG_H
#define RL_LOG_H

/* JSON-lines logging to stderr: {"ts":...,"level":...,"msg":...,fields}.
 * Thread-safe (one write(2) per line). Never pass secrets as fields. */

typedef enum {
    RL_LOG_DEBUG = 0,
    RL_LOG_INFO,
    RL_LOG_WARN,
    RL_LOG_ERROR
} rl_log_level_t;

void rl_log_set_level(rl_log_level_t level);
rl_log_level_t rl_log_get_level(void);
/* "debug", "info", "warn", "error" -> level; returns -1 if unknown. */
int rl_log_level_parse(const char *name);

/* fmt is the message (printf style). Extra fields are given as a NULL
 * terminated list of key, value string pairs through rl_log_kv(). */
void rl_log(rl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like rl_log with string fields: rl_log_kv(lvl, "msg", "k1", "v1", NULL). */
void rl_log_kv(rl_log_level_t level, const char *msg, ...);

#define rl_debug(...)                                                          \
    do {                                                                       \
        if (rl_log_get_level() <= RL_LOG_DEBUG)                                \
            rl_log(RL_LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)
#define rl_info(...) rl_log(RL_LOG_INFO, __VA_ARGS__)
#define rl_warn(...) rl_log(RL_LOG_WARN, __VA_ARGS__)
#define rl_error(...) rl_log(RL_LOG_ERROR, __VA_ARGS__)

#endif
