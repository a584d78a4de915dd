/* Bounded event-loop runs for the tests of asynchronous stores. */
#include "loop_helper.h"

#include "util.h"

/* Wakes EVLOOP_ONCE up so bounded waits re-check their clock. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

int rl_test_run_until(struct event_base *base, int (*pred)(void *), void *arg,
                      int ms)
{
    int64_t end = rl_mono_us() + (int64_t)ms * 1000;
    struct timeval tv = {0, 2000};
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);

    event_add(tick, &tv);
    while (!pred(arg) && rl_mono_us() < end) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return pred(arg);
}

static int pred_never(void *arg)
{
    return 0;
}

void rl_test_run_for(struct event_base *base, int ms)
{
    rl_test_run_until(base, pred_never, NULL, ms);
}
