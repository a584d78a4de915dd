#ifndef RL_GRPC_RLS_H
#define RL_GRPC_RLS_H

#include <stddef.h>
#include <stdint.h>
#include "decide.h"
#include "grpc.h"
#include "limit.h"

/* The services of the gRPC listener: Envoy's
 * envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit mapped
 * onto descriptor policies (every matched descriptor a part of one
 * atomic decision), and grpc.health.v1.Health/Check and /Watch (a server
 * stream of the serving status). */

struct rl_worker;

/* The handler of a worker's gRPC server (rl_grpc_handler_fn; arg is the
 * rl_worker_t): dispatches by path, UNIMPLEMENTED for any other. Worker
 * thread. */
void rl_grpc_rls_handle(void *arg, rl_grpc_call_t *call, const char *path,
                        const uint8_t *msg, size_t len);

/* The RateLimitResponse unit and requests_per_unit describing requests
 * per period_ms: the exact unit when the period is one (SECOND..YEAR,
 * a month 30 days, a year 365 days), else the nearest larger unit with
 * the requests scaled to it and rounded down (YEAR, scaled down, past a
 * year). Pure. */
void rl_grpc_rls_unit(int64_t requests, int64_t period_ms, int *unit,
                      uint32_t *per_unit);

/* The limit a descriptor's own RateLimitOverride stands for (requests
 * per unit as a fixed window, suffix "d" + the window), into *l.
 * Returns 0, or -1 for an unknown unit or 0 requests. Pure. */
int rl_grpc_rls_descriptor_limit(uint32_t requests, int unit, rl_limit_t *l);

/* 1 if part p of v (which has limits) is over: it denies (a limit of
 * its own, or a penalty or deny override on its key: v->deny_parts), or
 * a store failure closes it; in shadow mode it would. A part that only
 * shares another's denial is not. *pick: the limit that describes the
 * part (on a denial the one that keeps the caller out longest, else the
 * one with the fewest remaining). Pure. */
int rl_grpc_rls_part_over(const rl_verdict_t *v, int p, int *pick);

#endif
