/* bench/replay: the unpipelined Redis ceiling of one captured command.
 *
 * redis-benchmark takes its command's arguments from its command line, so
 * it cannot send the decision script's binary request argument (it holds
 * NUL bytes). This replays a command read from FILE (each argument a
 * 4-byte little-endian length and its bytes) on CONNS connections, one
 * command in flight on each, for SECONDS, with every "kprobe" in an
 * argument replaced by "k<random below KEYS>". It prints one CSV line in
 * redis-benchmark's --csv layout:
 *   "NAME","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms"
 *
 * Usage: replay PORT CONNS SECONDS KEYS FILE
 * Build: cc -O2 -o replay replay.c -lhiredis -levent */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define MAX_ARGS 64
#define MAX_CONNS 1024
#define HIST_US 100000 /* latencies up to 100 ms, one bucket per µs */

typedef struct replay {
    int argc;
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    int probe[MAX_ARGS]; /* offset of "kprobe" in the argument, or -1 */
    int keys;
    struct event_base *base;
    int64_t end_us;
    uint64_t done;
    uint64_t errors;
    uint64_t hist[HIST_US + 1];
} replay_t;

typedef struct conn {
    replay_t *r;
    redisAsyncContext *ac;
    int64_t sent_us;
    char *argv[MAX_ARGS]; /* this connection's copy, key filled in */
    size_t argvlen[MAX_ARGS];
} conn_t;

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads FILE's arguments into r; marks where "kprobe" sits in each. */
static int replay_load(replay_t *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char len4[4];

    if (f == NULL) {
        return -1;
    }
    while (r->argc < MAX_ARGS && fread(len4, 1, 4, f) == 4) {
        size_t n = (size_t)len4[0] | (size_t)len4[1] << 8 |
                   (size_t)len4[2] << 16 | (size_t)len4[3] << 24;
        char *a = malloc(n + 1);
        const char *hit;

        if (a == NULL || fread(a, 1, n, f) != n) {
            free(a);
            fclose(f);
            return -1;
        }
        hit = memmem(a, n, "kprobe", 6);
        r->probe[r->argc] = hit != NULL ? (int)(hit - a) : -1;
        r->argv[r->argc] = a;
        r->argvlen[r->argc++] = n;
    }
    fclose(f);
    return r->argc > 0 ? 0 : -1;
}

/* Fills c's arguments for one command on a random key. */
static void conn_fill(conn_t *c)
{
    replay_t *r = c->r;
    char key[16];
    int klen = snprintf(key, sizeof(key), "k%d", rand() % r->keys);
    int i;

    for (i = 0; i < r->argc; i++) {
        int at = r->probe[i];

        if (at < 0) {
            c->argv[i] = r->argv[i];
            c->argvlen[i] = r->argvlen[i];
            continue;
        }
        memcpy(c->argv[i], r->argv[i], (size_t)at);
        memcpy(c->argv[i] + at, key, (size_t)klen);
        memcpy(c->argv[i] + at + klen, r->argv[i] + at + 6,
               r->argvlen[i] - (size_t)at - 6);
        c->argvlen[i] = r->argvlen[i] - 6 + (size_t)klen;
    }
}

static void conn_send(conn_t *c);

/* A reply: counted with its latency; the next command goes out. */
static void conn_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    conn_t *c = arg;
    replay_t *r = c->r;
    int64_t t = now_us();
    int64_t lat = t - c->sent_us;
    redisReply *rep = reply;

    (void)ac;
    if (rep == NULL) {
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (r->errors++ == 0) {
            fprintf(stderr, "replay: error reply: %s\n", rep->str);
        }
    }
    r->done++;
    r->hist[lat < HIST_US ? lat : HIST_US]++;
    if (t < r->end_us) {
        conn_send(c);
    } else {
        redisAsyncDisconnect(c->ac);
    }
}

static void conn_send(conn_t *c)
{
    conn_fill(c);
    c->sent_us = now_us();
    redisAsyncCommandArgv(c->ac, conn_reply, c, c->r->argc,
                          (const char **)c->argv, c->argvlen);
}

/* The latency in ms below which a fraction q of the replies came. */
static double replay_pct(const replay_t *r, double q)
{
    uint64_t want = (uint64_t)(q * (double)r->done);
    uint64_t seen = 0;
    int i;

    for (i = 0; i <= HIST_US; i++) {
        seen += r->hist[i];
        if (seen > want) {
            return i / 1000.0;
        }
    }
    return HIST_US / 1000.0;
}

static void replay_print(const replay_t *r, double seconds)
{
    double sum = 0;
    int min = -1;
    int max = 0;
    int i;

    for (i = 0; i <= HIST_US; i++) {
        if (r->hist[i] > 0) {
            sum += (double)i * (double)r->hist[i];
            min = min < 0 ? i : min;
            max = i;
        }
    }
    printf("\"%s\",\"%.2f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\","
           "\"%.3f\"\n",
           r->argv[0], (double)r->done / seconds,
           r->done ? sum / (double)r->done / 1000.0 : 0.0, min / 1000.0,
           replay_pct(r, 0.5), replay_pct(r, 0.95), replay_pct(r, 0.99),
           max / 1000.0);
}

int main(int argc, char **argv)
{
    static replay_t r;
    static conn_t conns[MAX_CONNS];
    int port, nconns, seconds, i, j;
    int64_t t0;

    if (argc != 6 || (port = atoi(argv[1])) <= 0 ||
        (nconns = atoi(argv[2])) <= 0 || nconns > MAX_CONNS ||
        (seconds = atoi(argv[3])) <= 0 || (r.keys = atoi(argv[4])) <= 0 ||
        replay_load(&r, argv[5]) != 0) {
        fprintf(stderr, "usage: replay PORT CONNS SECONDS KEYS FILE\n");
        return 2;
    }
    r.base = event_base_new();
    t0 = now_us();
    r.end_us = t0 + (int64_t)seconds * 1000000;
    for (i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];

        c->r = &r;
        for (j = 0; j < r.argc; j++) {
            if (r.probe[j] >= 0) {
                c->argv[j] = malloc(r.argvlen[j] + 16);
            }
        }
        c->ac = redisAsyncConnect("127.0.0.1", port);
        if (c->ac == NULL || c->ac->err) {
            fprintf(stderr, "replay: cannot connect to port %d\n", port);
            return 1;
        }
        redisLibeventAttach(c->ac, r.base);
        conn_send(c);
    }
    event_base_dispatch(r.base);
    replay_print(&r, (double)(now_us() - t0) / 1e6);
    return r.errors > 0 ? 1 : 0;
}
