/* bench/replay: the unpipelined Redis ceiling of one captured request.
 *
 * redis-benchmark takes its command's arguments from its command line, so
 * it cannot send the decision script's binary request argument (it holds
 * NUL bytes). This replays a request of one command per FILE (each
 * argument a 4-byte little-endian length and its bytes; several FILEs go
 * out together, one pipeline, as a client sends one request's commands)
 * on CONNS connections, one request in flight on each, for SECONDS, with
 * every "kprobe" in an argument replaced by "k<random below KEYS>" (the
 * same number in every command of a request). It prints one CSV line in
 * redis-benchmark's --csv layout, rps counting requests:
 *   "NAME","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms"
 *
 * Usage: replay PORT CONNS SECONDS KEYS FILE...
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
#define MAX_CMDS 16
#define MAX_CONNS 1024
#define HIST_US 100000 /* latencies up to 100 ms, one bucket per µs */

typedef struct command {
    int argc;
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    int probe[MAX_ARGS]; /* offset of "kprobe" in the argument, or -1 */
} command_t;

typedef struct replay {
    int ncmds;
    command_t cmds[MAX_CMDS];
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
    int waiting;   /* replies of the request in flight still to come */
    command_t cmd; /* this connection's copy of one command, key filled in */
    char *keyed[MAX_CMDS][MAX_ARGS]; /* room for each keyed argument */
} conn_t;

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads FILE's arguments into a command of r; marks where "kprobe" sits
 * in each. */
static int replay_load(replay_t *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char len4[4];
    command_t *cmd = &r->cmds[r->ncmds];

    if (f == NULL || r->ncmds == MAX_CMDS) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    while (cmd->argc < MAX_ARGS && fread(len4, 1, 4, f) == 4) {
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
        cmd->probe[cmd->argc] = hit != NULL ? (int)(hit - a) : -1;
        cmd->argv[cmd->argc] = a;
        cmd->argvlen[cmd->argc++] = n;
    }
    fclose(f);
    if (cmd->argc == 0) {
        return -1;
    }
    r->ncmds++;
    return 0;
}

/* Fills c's copy of command k with key in place of "kprobe". */
static void conn_fill(conn_t *c, int k, const char *key, size_t klen)
{
    const command_t *src = &c->r->cmds[k];
    int i;

    c->cmd.argc = src->argc;
    for (i = 0; i < src->argc; i++) {
        int at = src->probe[i];
        char *dst = c->keyed[k][i];

        if (at < 0) {
            c->cmd.argv[i] = src->argv[i];
            c->cmd.argvlen[i] = src->argvlen[i];
            continue;
        }
        memcpy(dst, src->argv[i], (size_t)at);
        memcpy(dst + at, key, klen);
        memcpy(dst + at + klen, src->argv[i] + at + 6,
               src->argvlen[i] - (size_t)at - 6);
        c->cmd.argv[i] = dst;
        c->cmd.argvlen[i] = src->argvlen[i] - 6 + klen;
    }
}

static void conn_send(conn_t *c);

/* A reply: the last of a request counts it with its latency, and the
 * next request goes out. */
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
    if (--c->waiting > 0) {
        return;
    }
    r->done++;
    r->hist[lat < HIST_US ? lat : HIST_US]++;
    if (t < r->end_us) {
        conn_send(c);
    } else {
        redisAsyncDisconnect(c->ac);
    }
}

/* Sends one request: every command, on one random key number. */
static void conn_send(conn_t *c)
{
    char key[16];
    int klen = snprintf(key, sizeof(key), "k%d", rand() % c->r->keys);
    int k;

    c->sent_us = now_us();
    c->waiting = c->r->ncmds;
    for (k = 0; k < c->r->ncmds; k++) {
        conn_fill(c, k, key, (size_t)klen);
        redisAsyncCommandArgv(c->ac, conn_reply, c, c->cmd.argc,
                              (const char **)c->cmd.argv, c->cmd.argvlen);
    }
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
           r->cmds[0].argv[0], (double)r->done / seconds,
           r->done ? sum / (double)r->done / 1000.0 : 0.0, min / 1000.0,
           replay_pct(r, 0.5), replay_pct(r, 0.95), replay_pct(r, 0.99),
           max / 1000.0);
}

int main(int argc, char **argv)
{
    static replay_t r;
    static conn_t conns[MAX_CONNS];
    int port, nconns, seconds, i, j, k;
    int64_t t0;

    if (argc < 6 || (port = atoi(argv[1])) <= 0 ||
        (nconns = atoi(argv[2])) <= 0 || nconns > MAX_CONNS ||
        (seconds = atoi(argv[3])) <= 0 || (r.keys = atoi(argv[4])) <= 0) {
        fprintf(stderr, "usage: replay PORT CONNS SECONDS KEYS FILE...\n");
        return 2;
    }
    for (i = 5; i < argc; i++) {
        if (replay_load(&r, argv[i]) != 0) {
            fprintf(stderr, "replay: cannot read a command from %s\n",
                    argv[i]);
            return 2;
        }
    }
    r.base = event_base_new();
    t0 = now_us();
    r.end_us = t0 + (int64_t)seconds * 1000000;
    for (i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];

        c->r = &r;
        for (k = 0; k < r.ncmds; k++) {
            for (j = 0; j < r.cmds[k].argc; j++) {
                if (r.cmds[k].probe[j] >= 0) {
                    c->keyed[k][j] = malloc(r.cmds[k].argvlen[j] + 16);
                }
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
