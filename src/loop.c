/* Helpers for libevent events (see loop.h). */
#include "loop.h"

#include <sys/time.h>
#include "util.h"

/* Arms ev for when_us, clamped to now. */
void rl_loop_timer_at(struct event *ev, int64_t when_us)
{
    int64_t delay = when_us - rl_mono_us();
    struct timeval tv;

    if (delay < 0) {
        delay = 0;
    }
    tv.tv_sec = (time_t)(delay / 1000000);
    tv.tv_usec = (suseconds_t)(delay % 1000000);
    /* libevent adds the delay to the time it cached when the loop pass
     * began: refreshed, a pass that was preempted cannot fire it early. */
    (void)event_base_update_cache_time(event_get_base(ev));
    evtimer_add(ev, &tv);
}

/* Frees ev unless it is NULL. */
void rl_loop_event_free(struct event *ev)
{
    if (ev != NULL) {
        event_free(ev);
    }
}
