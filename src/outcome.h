#ifndef RL_OUTCOME_H
#define RL_OUTCOME_H

#include "decide.h"
#include "errors.h"
#include "stats.h"

/* Decision outcomes: every way a decision request can end, one row each,
 * with everything a front end needs to answer it and account for it.
 * /v1/decide, batch items, /v1/authorize and the admin reset read it
 * (through api.c); a later front end (gRPC) reads the same rows, so they
 * hold statuses and error kinds, never HTTP writing. Pure, any thread
 * (rl_outcome_count: the counting worker's own thread). */

/* How a front end answers an outcome. */
typedef enum {
    RL_OUTCOME_REPLY_VERDICT = 0, /* the front end's decision reply */
    RL_OUTCOME_REPLY_ERROR,       /* the error reply of the outcome's kind */
    RL_OUTCOME_REPLY_UNAVAILABLE  /* the error reply, plus the verdict's
                                   * policy and degraded reason */
} rl_outcome_reply_t;

/* Status column: a fixed status, or one of these. */
#define RL_OUTCOME_STATUS_DENY (-1)  /* the policy's deny status */
#define RL_OUTCOME_STATUS_ERROR (-2) /* the error kind's status */
/* the policy's "unavailable" status, else the error kind's */
#define RL_OUTCOME_STATUS_UNAVAILABLE (-3)

/* Columns: name; "allowed" of the reply; how it is answered; its status;
 * its error kind (NONE on an error row: the failure's own kind, i.e. the
 * request parser's or the tenant check's); the rl_stats_t counter it
 * bumps; the per-policy verdict it counts (none: not per policy); the
 * access log's verdict word. */
/* clang-format off: one row per line reads as a table */
#define RL_OUTCOMES(X)                                                         \
    X(ALLOWED, 1, VERDICT, 200, NONE, decisions_allowed, allowed, "allowed")   \
    X(DENIED, 0, VERDICT, RL_OUTCOME_STATUS_DENY, RATE_LIMITED,                \
      decisions_denied, denied, "denied")                                      \
    X(SHADOW_DENIED, 1, VERDICT, 200, NONE, decisions_shadow_denied,           \
      shadow_denied, "shadow_denied")                                          \
    X(UNMATCHED, 1, VERDICT, 200, NONE, decisions_unmatched, none,             \
      "unmatched")                                                             \
    X(DEGRADED_OPEN, 1, VERDICT, 200, NONE, decisions_degraded, error,         \
      "error")                                                                 \
    X(UNAVAILABLE, 0, UNAVAILABLE, RL_OUTCOME_STATUS_UNAVAILABLE,              \
      STORE_UNAVAILABLE, decisions_degraded, error, "error")                   \
    X(INVALID, 0, ERROR, RL_OUTCOME_STATUS_ERROR, MISSING_FIELD,               \
      decisions_invalid, none, "invalid")                                      \
    X(BAD_POLICY, 0, ERROR, RL_OUTCOME_STATUS_ERROR, UNKNOWN_POLICY,           \
      decisions_invalid, none, "invalid")                                      \
    X(BAD_REQUEST, 0, ERROR, RL_OUTCOME_STATUS_ERROR, NONE, decisions_invalid, \
      none, "invalid")                                                         \
    X(TENANT_AUTH, 0, ERROR, RL_OUTCOME_STATUS_ERROR, NONE,                    \
      tenant_auth_failures, none, "unauthorized")

typedef enum {
#define RL_OUTCOMES_ENUM(name, allowed, reply, status, error, metric, pv, log) \
    RL_OUTCOME_##name,
    RL_OUTCOMES(RL_OUTCOMES_ENUM)
#undef RL_OUTCOMES_ENUM
        RL_NOUTCOMES
} rl_outcome_kind_t;
/* clang-format on */

/* One finished decision as a front end answers it: the row's columns,
 * resolved against the verdict. */
typedef struct rl_outcome {
    rl_outcome_kind_t kind;
    int allowed;
    rl_outcome_reply_t reply;
    int status;          /* what the client is told (HTTP status) */
    rl_error_t error;    /* RL_ERR_NONE for allowed / unmatched / shadow */
    const char *verdict; /* the access log's word (static) */
} rl_outcome_t;

/* Fills o from row kind; v (may be NULL) gives the deny status, the
 * policy's unavailable status and, for TENANT_AUTH, the error kind; error is
 * the kind of an error row whose column is NONE (BAD_REQUEST: the request
 * parser's). */
void rl_outcome_make(rl_outcome_kind_t kind, const rl_verdict_t *v,
                     rl_error_t error, rl_outcome_t *o);

/* Fills o for what rl_decide's callback received (v may be NULL for
 * INVALID / BAD_POLICY). */
void rl_outcome_of(rl_decide_status_t status, const rl_verdict_t *v,
                   rl_outcome_t *o);

/* Counts o in st: the row's counter, the degraded reason of a degraded
 * verdict, and the per-policy verdict. v may be NULL. The worker that
 * owns st only. */
void rl_outcome_count(rl_stats_t *st, const rl_outcome_t *o,
                      const rl_verdict_t *v);

#endif
