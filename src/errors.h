#ifndef RL_ERRORS_H
#define RL_ERRORS_H

/* Every error ratelimitd answers, one row each: the kind (RL_ERR_<kind>),
 * its code, its HTTP status and its default message. The rows are the
 * only place a code string is written; docs/api.md's error table is
 * checked against them (tests/integration/test_docs_errors.py), so a row
 * added here must be added there. Front-end neutral: a front end that is
 * not HTTP maps the status its own way. Adding an error is one row.
 *
 * The AUTH rows serve caller authentication and tenant verification
 * alike (one signing scheme). RATE_LIMITED is the default deny body's
 * code; its status is the policy's deny status (429 by default). The
 * protocol rows (REQUEST_TIMEOUT ... BUSY) are the HTTP layer's. */
/* clang-format off: one row per line reads as a table */
#define RL_ERRORS(X)                                                           \
    X(MALFORMED_JSON, "VAL_002", 400, "malformed JSON")                        \
    X(MISSING_FIELD, "VAL_001", 422, "a required field is missing")            \
    X(INVALID_FIELD, "VAL_002", 422, "a field has the wrong type or value")    \
    X(BAD_PATH, "VAL_002", 422,                                                \
      "path must not contain \".\" or \"..\" segments")                        \
    X(INVALID_HEADER, "VAL_002", 400, "a request header has a bad value")      \
    X(MISSING_HEADER, "VAL_001", 400, "a required request header is missing")  \
    X(UNKNOWN_POLICY, "VAL_002", 422, "no policy applies to the request")      \
    X(BATCH_TOO_LARGE, "VAL_003", 400, "too many requests in one batch")       \
    X(BATCH_INVALID, "VAL_001", 400, "validation failed")                      \
    X(NOT_FOUND, "NOT_FOUND", 404, "no such endpoint")                         \
    X(METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405, "method not allowed")     \
    X(UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", 415,                   \
      "Content-Type must be application/json")                                 \
    X(AUTH_INVALID, "AUTH_001", 401, "invalid signature")                      \
    X(AUTH_MISSING, "AUTH_002", 401, "missing authentication header")          \
    X(AUTH_SUSPENDED, "AUTH_003", 403, "suspended")                            \
    X(AUTH_TIMESTAMP, "AUTH_004", 401, "timestamp must be unix seconds")       \
    X(AUTH_UNKNOWN, "AUTH_005", 401, "caller not found")                       \
    X(AUTHORIZATION_REPEATED, "BAD_REQUEST", 400,                              \
      "Authorization appears more than once")                                  \
    X(AUTH_THROTTLED, "RATE_001", 429,                                         \
      "too many failed authentications from this address")                     \
    X(ADMIN_KEY_MISSING, "AUTH_002", 401,                                      \
      "missing header: Authorization: Bearer <admin key>")                     \
    X(ADMIN_KEY_INVALID, "AUTH_001", 401, "invalid admin key")                 \
    X(RATE_LIMITED, "RATE_001", 429, "rate limit exceeded")                    \
    X(STORE_UNAVAILABLE, "STORE_001", 503, "rate-limit store unavailable")     \
    X(INTERNAL, "INTERNAL", 500, "out of memory")                              \
    X(REQUEST_TIMEOUT, "REQUEST_TIMEOUT", 408, "request not received in time") \
    X(BAD_REQUEST, "BAD_REQUEST", 400, "malformed request")                    \
    X(BODY_TOO_LARGE, "PAYLOAD_TOO_LARGE", 413, "request body too large")      \
    X(HEADERS_TOO_LARGE, "HEADERS_TOO_LARGE", 431,                             \
      "request headers too large")                                             \
    X(NOT_IMPLEMENTED, "NOT_IMPLEMENTED", 501,                                 \
      "Transfer-Encoding not supported")                                       \
    X(OUT_OF_MEMORY, "OUT_OF_MEMORY", 503, "out of memory")                    \
    X(BUSY, "BUSY", 503, "too many connections")

/* RL_ERR_NONE (0) is "no error", never answered. */
typedef enum {
    RL_ERR_NONE = 0,
#define RL_ERRORS_ENUM(name, code, status, message) RL_ERR_##name,
    RL_ERRORS(RL_ERRORS_ENUM)
#undef RL_ERRORS_ENUM
        RL_NERRORS
} rl_error_t;
/* clang-format on */

/* The row of kind: its code ("VAL_002"), HTTP status and default
 * message. Static strings; a kind out of range reads as INTERNAL. Pure,
 * any thread. */
const char *rl_error_code(rl_error_t kind);
int rl_error_status(rl_error_t kind);
const char *rl_error_message(rl_error_t kind);

#endif
