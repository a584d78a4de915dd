#ifndef RL_CONFREF_H
#define RL_CONFREF_H

#include "conf.h"

/* A configuration shared by the workers, reference counted, so that a
 * reload (SIGHUP) can swap it while requests are in flight: requests
 * finish on the conf they started with, and the old conf is freed when
 * its last user is done.
 *
 * Two levels keep the hot path free of shared atomics:
 *  - rl_confref_t holds one reference per thread that adopted it (plus
 *    the main thread's); taking and dropping those is an atomic on a
 *    reload, never per request;
 *  - within a worker, in-flight decisions pin the conf they use with
 *    rl_conf_pin/rl_conf_unpin, a plain counter in thread-local state. A
 *    retired conf is released by its worker once its pins reach zero. */

typedef struct rl_confref rl_confref_t;

/* Wraps conf (ownership passes to the ref) with refs references.
 * Returns NULL if out of memory (conf is then still the caller's). */
rl_confref_t *rl_confref_new(rl_conf_t *conf, int refs);

/* The conf inside r. */
rl_conf_t *rl_confref_conf(const rl_confref_t *r);

/* Drops one reference (any thread); the last one frees the conf. */
void rl_confref_release(rl_confref_t *r);

/* Makes r the calling thread's current conf, taking over one reference
 * the caller already holds for this thread. The previous current conf
 * is retired: released at once if nothing pins it, else by the last
 * rl_conf_unpin. Returns 0, or -1 if out of memory (r is then released
 * and the current conf stays). */
int rl_confref_adopt(rl_confref_t *r);

/* Pins conf for one in-flight operation on the calling thread, or
 * unpins it. No-ops for a conf the thread never adopted (unit tests). */
void rl_conf_pin(const rl_conf_t *conf);
void rl_conf_unpin(const rl_conf_t *conf);

/* Retired confs of the calling thread still pinned by operations. */
int rl_confref_retired(void);

/* Releases every conf of the calling thread (its loop has ended and no
 * operation is pending). */
void rl_confref_thread_cleanup(void);

#endif
