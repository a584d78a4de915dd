/* The access log writer (see access_log.h). */
#include "access_log.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACCESS_WRITE_MAX 4096
#define ACCESS_PERIOD_NS 10000000L

/* One single-producer, single-consumer byte ring. head is written by the
 * worker only, tail by the writer thread only. */
typedef struct access_ring {
    char *buf;
    size_t size;   /* a power of two */
    uint64_t head; /* bytes ever pushed (release by the worker) */
    uint64_t tail; /* bytes ever written (release by the writer) */
} access_ring_t;

struct rl_access_log {
    access_ring_t *rings;
    int nrings;
    int fd;
    int stop; /* atomic: set by rl_access_log_free */
    pthread_t thread;
};

int rl_access_log_push(rl_access_log_t *l, int ring, const char *line,
                       size_t len)
{
    access_ring_t *r;
    uint64_t head, tail;
    size_t off, first;

    if (l == NULL || ring < 0 || ring >= l->nrings) {
        return -1;
    }
    r = &l->rings[ring];
    head = r->head;
    tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    if (len > r->size - (size_t)(head - tail)) {
        return -1;
    }
    off = (size_t)(head & (r->size - 1));
    first = len < r->size - off ? len : r->size - off;
    memcpy(r->buf + off, line, first);
    memcpy(r->buf, line + first, len - first);
    __atomic_store_n(&r->head, head + len, __ATOMIC_RELEASE);
    return 0;
}

/* Writes n bytes, retrying short writes and EINTR; gives up on errors
 * (stderr is gone: nothing else can be done). */
static void access_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Drains one ring in writes of whole lines of at most 4096 bytes.
 * Returns 1 if anything was written. */
static int access_drain(rl_access_log_t *l, access_ring_t *r)
{
    char chunk[ACCESS_WRITE_MAX];
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    uint64_t tail = r->tail;
    int wrote = 0;

    while (tail < head) {
        size_t n = (size_t)(head - tail);
        size_t off = (size_t)(tail & (r->size - 1));
        size_t first, cut;

        if (n > sizeof(chunk)) {
            n = sizeof(chunk);
        }
        first = n < r->size - off ? n : r->size - off;
        memcpy(chunk, r->buf + off, first);
        memcpy(chunk + first, r->buf, n - first);
        for (cut = n; cut > 0 && chunk[cut - 1] != '\n'; cut--) {
        }
        if (cut == 0) {
            cut = n; /* a line longer than a chunk: write it in pieces */
        }
        access_write_all(l->fd, chunk, cut);
        tail += cut;
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
        wrote = 1;
    }
    return wrote;
}

/* The writer thread: drains every ring, sleeps 10 ms, until stopped;
 * then drains once more. */
static void *access_main(void *arg)
{
    rl_access_log_t *l = arg;
    struct timespec ts = {0, ACCESS_PERIOD_NS};
    int i;

    for (;;) {
        int stopping = __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE);
        for (i = 0; i < l->nrings; i++) {
            access_drain(l, &l->rings[i]);
        }
        if (stopping) {
            break;
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

rl_access_log_t *rl_access_log_new(int nrings, size_t ring_bytes, int fd)
{
    rl_access_log_t *l = calloc(1, sizeof(*l));
    int i;

    if (l == NULL) {
        return NULL;
    }
    l->fd = fd;
    l->rings = calloc((size_t)nrings, sizeof(*l->rings));
    if (l->rings == NULL) {
        goto err;
    }
    l->nrings = nrings;
    for (i = 0; i < nrings; i++) {
        l->rings[i].buf = malloc(ring_bytes);
        l->rings[i].size = ring_bytes;
        if (l->rings[i].buf == NULL) {
            goto err;
        }
    }
    if (pthread_create(&l->thread, NULL, access_main, l) != 0) {
        goto err;
    }
    return l;

err:
    if (l->rings != NULL) {
        for (i = 0; i < l->nrings; i++) {
            free(l->rings[i].buf);
        }
    }
    free(l->rings);
    free(l);
    return NULL;
}

void rl_access_log_free(rl_access_log_t *l)
{
    int i;

    if (l == NULL) {
        return;
    }
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
    pthread_join(l->thread, NULL);
    for (i = 0; i < l->nrings; i++) {
        free(l->rings[i].buf);
    }
    free(l->rings);
    free(l);
}

/* Appends s as a JSON string (quoted, escaped) at buf[*n]; 0 or -1. */
static int access_json_str(char *buf, size_t len, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    if (*n + 1 >= len) {
        return -1;
    }
    buf[(*n)++] = '"';
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (*n + 7 >= len) {
            return -1;
        }
        if (ch == '"' || ch == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(buf + *n, "\\u00", 4);
            buf[*n + 4] = hex[ch >> 4];
            buf[*n + 5] = hex[ch & 15];
            *n += 6;
        } else {
            buf[(*n)++] = (char)ch;
        }
    }
    buf[(*n)++] = '"';
    return 0;
}

/* Appends printf output at buf[*n]; 0 or -1 if it did not fit. */
static int access_printf(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int access_printf(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int w;

    va_start(ap, fmt);
    w = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= len - *n) {
        return -1;
    }
    *n += (size_t)w;
    return 0;
}

size_t rl_access_log_format(char *buf, size_t len, int64_t wall_ms,
                            const char *request_id, const char *policy,
                            const char *verdict, int status, int64_t latency_us,
                            int cached)
{
    struct tm tm;
    time_t sec = (time_t)(wall_ms / 1000);
    size_t n = 0;

    gmtime_r(&sec, &tm);
    if (access_printf(buf, len, &n,
                      "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                      "\"level\":\"info\","
                      "\"msg\":\"access\",\"request_id\":",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                      tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000)) != 0 ||
        access_json_str(buf, len, &n, request_id) != 0 ||
        access_printf(buf, len, &n, ",\"policy\":") != 0) {
        return 0;
    }
    if (policy != NULL ? access_json_str(buf, len, &n, policy) != 0
                       : access_printf(buf, len, &n, "null") != 0) {
        return 0;
    }
    if (access_printf(buf, len, &n, ",\"verdict\":") != 0 ||
        access_json_str(buf, len, &n, verdict) != 0 ||
        access_printf(
            buf, len, &n, ",\"status\":%d,\"latency_us\":%lld,\"cached\":%s}\n",
            status, (long long)latency_us, cached ? "true" : "false") != 0) {
        return 0;
    }
    return n;
}
