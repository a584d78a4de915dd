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
 * deny override's, else the policy's; NULL for the default body. Sets
 * *tpl to that body's compiled form (NULL: not compiled, or the default
 * body). Both borrowed. */
const json_t *rl_reply_deny_source(const rl_verdict_t *v,
                                   const rl_body_tpl_t **tpl);

/* A JSON writer into a caller's buffer. len counts what would have been
 * written, so len > cap means the buffer was too small. */
typedef struct rl_jw {
    char *buf;
    size_t len;
    size_t cap;
} rl_jw_t;

/* Appends the n bytes of s to w. */
void rl_jw_raw(rl_jw_t *w, const char *s, size_t n);

/* Appends the len bytes of s (UTF-8, NUL allowed) escaped as the inside
 * of a JSON string, as jansson's dump escapes it (no quotes); ascii: as
 * with JSON_ENSURE_ASCII. */
void rl_jw_esc(rl_jw_t *w, const char *s, size_t len, int ascii);

/* Appends v's deny body to w as json_dumpb(rl_reply_deny_body(v), flags |
 * JSON_COMPACT | JSON_PRESERVE_ORDER) would (JSON_ENSURE_ASCII and
 * JSON_ENCODE_ANY are honoured): from the compiled body without
 * allocating, else through jansson. 0, or -1 where jansson fails (memory
 * ran out; a body that is no object or array without JSON_ENCODE_ANY). */
int rl_reply_deny_jw(rl_jw_t *w, const rl_verdict_t *v, size_t flags);

#endif
