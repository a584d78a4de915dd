#ifndef RL_API_H
#define RL_API_H

#include <stdint.h>
#include <jansson.h>
#include "decide.h"
#include "errors.h"
#include "http.h"
#include "outcome.h"
#include "request.h"

struct rl_worker;

/* The API layer shared by every HTTP front end (api_*.c): the JSON reply,
 * the one error reply (errors.h), the JSON body -> decision request
 * helper, the outcome reply (outcome.h) and the access log line. The
 * router (server.c) and the front ends call it; it calls neither. Worker
 * thread only. */

/* Sends obj (reference stolen) as req's JSON body with status and n
 * extra headers (names and values borrowed for the call). */
void rl_api_reply_json(rl_http_req_t *req, int status, json_t *obj,
                       const char *const *names, const char *const *values,
                       int n);

/* The error shape {"error", "code", "trace_id"} of kind; message NULL
 * means the table's default. trace_id NULL leaves it out. New
 * reference. */
json_t *rl_api_error_body(const char *trace_id, rl_error_t kind,
                          const char *message);

/* Answers req with kind's status and error shape, plus n extra headers
 * (Allow, WWW-Authenticate, Retry-After). Every error reply of every
 * front end goes through here. */
void rl_api_error_headers(rl_http_req_t *req, rl_error_t kind,
                          const char *message, const char *const *names,
                          const char *const *values, int n);

/* rl_api_error_headers without headers. */
void rl_api_error(rl_http_req_t *req, rl_error_t kind, const char *message);

/* Parses req's body as JSON (duplicate keys refused, NUL bytes kept for
 * field validation, any value accepted). Returns a new reference, or
 * NULL after answering 400 MALFORMED_JSON with the parser's message. */
json_t *rl_api_json_body(rl_http_req_t *req);

/* The one JSON-body-to-request helper: parses req's body into *dr.
 * Returns the JSON root (the caller drops it once rl_decide has
 * returned: dr borrows from it), or NULL after answering the 4xx, with
 * *o the BAD_REQUEST outcome (for the access log and the count). */
json_t *rl_api_request_body(rl_http_req_t *req, rl_request_t *dr,
                            rl_outcome_t *o);

/* Adds the verdict fields of a store failure to obj: "allowed" false,
 * "policy", "degraded" true, "degraded_reason". */
void rl_api_unavailable_fields(json_t *obj, const rl_verdict_t *v);

/* The body of an UNAVAILABLE outcome o (status o->status: the policy's
 * "unavailable" status, else 503): the policy's "unavailable" body
 * templated (placeholders of deny bodies plus {trace_id} = trace_id), or
 * without one the STORE_001 error shape (message NULL: the default) with
 * the verdict's fields. Every front end answers a fail-closed store
 * failure with it. New reference (NULL only when memory runs out). */
json_t *rl_api_unavailable_body(const rl_outcome_t *o, const rl_verdict_t *v,
                                const char *trace_id, const char *message);

/* The batch result of an UNAVAILABLE outcome o: the verdict's fields and
 * "status", then "body" (the policy's "unavailable" body, templated as
 * in rl_api_unavailable_body) or, without one, STORE_001's "error" and
 * "code". New reference. */
json_t *rl_api_unavailable_item(const rl_outcome_t *o, const rl_verdict_t *v,
                                const char *trace_id);

/* Answers the error outcomes of a decision the same way for /v1/decide
 * and /v1/authorize: an ERROR row with its kind's status and code and
 * message (NULL: the default), UNAVAILABLE with rl_api_unavailable_body
 * and o->status. Returns 1 if it answered req, 0 for a verdict row (the
 * front end writes its own reply). */
int rl_api_outcome_failed(rl_http_req_t *req, const rl_outcome_t *o,
                          const rl_verdict_t *v, const char *message);

/* Counts o in w's stats and writes its sampled access log line: request
 * id, the verdict's policy (v may be NULL), o's verdict word and status,
 * latency since start_us (monotonic). */
void rl_api_account(struct rl_worker *w, const char *id, const rl_outcome_t *o,
                    const rl_verdict_t *v, int64_t start_us);

/* The access log line alone (the decision core has counted o). */
void rl_api_access_log(struct rl_worker *w, const char *id,
                       const rl_outcome_t *o, const rl_verdict_t *v,
                       int64_t latency_us);

#endif
