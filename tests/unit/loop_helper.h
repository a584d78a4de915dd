#ifndef RL_TEST_LOOP_HELPER_H
#define RL_TEST_LOOP_HELPER_H

#include <event2/event.h>

/* Runs base until pred(arg) holds or ms pass; returns pred(arg). A 2 ms
 * tick wakes the loop so the bound is checked even when nothing happens. */
int rl_test_run_until(struct event_base *base, int (*pred)(void *), void *arg,
                      int ms);

/* Runs base for ms milliseconds. */
void rl_test_run_for(struct event_base *base, int ms);

#endif
