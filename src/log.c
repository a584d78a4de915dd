/* JSON-lines logging on stderr. One write(2) per line keeps lines whole
 * when several threads log at once. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = RL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rl_log_set_level(rl_log_level_t level)
{
    log_level = (int)level;
}

rl_log_level_t rl_log_get_level(void)
{
    return (rl_log_level_t)log_level;
}

int rl_log_level_parse(const char *name)
{
    int i;
    for (i = 0; i < 4; i++) {
        if (name != NULL && strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Emits obj (stolen) with ts/level/msg added, as one line. */
static void log_emit(rl_log_level_t level, const char *msg, json_t *obj)
{
    struct timespec ts;
    struct tm tm;
    char tsbuf[96];
    char *line;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);
    {
        /* ts, level and msg lead every line; the fields follow. */
        json_t *line_obj = json_object();
        json_object_set_new(line_obj, "ts", json_string(tsbuf));
        json_object_set_new(line_obj, "level", json_string(level_names[level]));
        json_object_set_new(line_obj, "msg", json_string(msg));
        json_object_update(line_obj, obj);
        json_decref(obj);
        line = json_dumps(line_obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(line_obj);
    }
    if (line != NULL) {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps leaves room: we replace the NUL */
        if (write(STDERR_FILENO, line, n + 1) <
            0) { /* nowhere left to report it */
        }
        free(line);
    }
}

void rl_log(rl_log_level_t level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if ((int)level < log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_emit(level, msg, json_object());
}

void rl_log_kv(rl_log_level_t level, const char *msg, ...)
{
    json_t *obj;
    va_list ap;
    const char *k;

    if ((int)level < log_level) {
        return;
    }
    obj = json_object();
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        json_object_set_new(obj, k, v != NULL ? json_string(v) : json_null());
    }
    va_end(ap);
    log_emit(level, msg, obj);
}
