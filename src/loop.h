#ifndef RL_LOOP_H
#define RL_LOOP_H

#include <stdint.h>
#include <event2/event.h>

/* Small helpers for libevent events, shared by the modules that keep
 * deadlines on the monotonic clock (redis_conn, store_cluster). The
 * caller's thread owns the event. */

/* Arms ev to fire at the monotonic time when_us (rl_mono_us), not
 * earlier however long the loop pass has run; at once if that has
 * passed. */
void rl_loop_timer_at(struct event *ev, int64_t when_us);

/* event_free for an event that may be NULL (never created). */
void rl_loop_event_free(struct event *ev);

/* A worker's loop has RL_LOOP_PRIORITIES priorities (worker.c); every
 * event has the middle one unless set otherwise. An event of
 * RL_LOOP_PRIORITY_IDLE runs only once no event of a higher one is ready,
 * after libevent polled again: while requests keep arriving it waits.
 * On a loop without priorities (a test's) it keeps the default. */
#define RL_LOOP_PRIORITIES 3
#define RL_LOOP_PRIORITY_IDLE 2

#endif
