#ifndef RL_ACCESS_LOG_H
#define RL_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

/* The access log: sampled JSON lines on stderr, one per decision, written
 * by a thread of its own so that a worker never blocks on a slow stderr.
 * Each worker has a single-producer ring; the writer thread drains every
 * ring every 10 ms, in writes of whole lines of at most 4096 bytes (so a
 * pipe never splits a line). A line that does not fit is dropped, and the
 * caller counts it. */

typedef struct rl_access_log rl_access_log_t;

/* Creates nrings rings of ring_bytes (a power of two) each and starts the
 * writer thread on fd. NULL on failure. Main thread. */
rl_access_log_t *rl_access_log_new(int nrings, size_t ring_bytes, int fd);

/* Appends one line (len bytes, ending in '\n') to ring; only the ring's
 * own worker calls it. Returns 0, or -1 when it was dropped. */
int rl_access_log_push(rl_access_log_t *l, int ring, const char *line,
                       size_t len);

/* Writes what is left and stops the thread (the workers have stopped). */
void rl_access_log_free(rl_access_log_t *l);

/* Formats one access line into buf (pure):
 *   {"ts":"...","level":"info","msg":"access","request_id":"...",
 *    "policy":"..."|null,"verdict":"...","status":N,"latency_us":N,"cached":B}
 * request_id and policy are restricted character sets (http.c, conf.c)
 * and are escaped all the same. Returns the length, or 0 if it did not
 * fit. No key value (tenant, user, path, ...) is ever part of it. */
size_t rl_access_log_format(char *buf, size_t len, int64_t wall_ms,
                            const char *request_id, const char *policy,
                            const char *verdict, int status, int64_t latency_us,
                            int cached);

#endif
