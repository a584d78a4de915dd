#ifndef RL_REPLY_INT_H
#define RL_REPLY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "reply.h"

/* Shared by reply.c (headers, the decision JSON) and reply_template.c
 * (placeholders, deny bodies). Pure; any thread. */

/* The Retry-After value of v: seconds rounded up, at least 1. */
int64_t rl_reply_retry_after_s(const rl_verdict_t *v);

/* 1 if v is a denial with no time after which a retry may pass: a deny
 * override without ttl, or paths.unmatched's deny (no policy). It gets
 * no Retry-After, and {retry_after}, {retry_after_human} stay as they
 * are: no invented wait. */
int rl_reply_no_retry(const rl_verdict_t *v);

/* The deciding limit's requests, in decimal, into buf (len >= 21). */
void rl_reply_fmt_limit(const rl_verdict_t *v, char *buf, size_t len);

/* The deny body a verdict's denial uses: a blocking penalty's, else a
 * deny override's, else the policy's; NULL for the default body.
 * Borrowed. */
const json_t *rl_reply_deny_source(const rl_verdict_t *v);

#endif
