#ifndef RL_AUTH_H
#define RL_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "conf.h"
#include "errors.h"
#include "request.h"

/* Authentication: who may ask for decisions (callers) and whose quota a
 * decision spends (tenants). One signing scheme for both:
 *
 *   string to sign = TIMESTAMP "\n" METHOD "\n" PATH "\n" BODY_SHA256_HEX
 *   signature      = "hmac-sha256=" hex(HMAC-SHA256(secret, string))
 *
 * TIMESTAMP is the header value as sent (unix seconds), METHOD upper-case,
 * PATH the request target with its query string as sent, BODY_SHA256_HEX
 * the lower-case hex SHA-256 of the raw body. Every comparison of a
 * secret-derived value is constant-time. The functions here do no I/O
 * and allocate nothing (hash states live on the stack). Any thread;
 * secrets never appear in an error message. */

#define RL_AUTH_SIG_PREFIX "hmac-sha256="
#define RL_AUTH_SIG_LEN 76 /* prefix + 64 hex digits */

typedef struct rl_auth_error {
    rl_error_t kind;  /* RL_ERR_AUTH_* (errors.h) */
    int status;       /* kind's status: 401, 403, or 429 (throttled) */
    const char *code; /* kind's code: "AUTH_001".."AUTH_005", "RATE_001" */
    char message[160];
    int64_t retry_after_s; /* 429 only */
} rl_auth_error_t;

/* A request to ratelimitd itself, as caller authentication sees it. */
typedef struct rl_auth_input {
    const char *method; /* as sent */
    size_t method_len;
    const char *target; /* path with its query string, as sent */
    size_t target_len;
    const char *body; /* raw body (after chunked decoding) */
    size_t body_len;
    const rl_header_t *headers;
    int nheaders;
} rl_auth_input_t;

/* Computes the signature of one request into out (RL_AUTH_SIG_LEN + 1
 * bytes, NUL terminated). body_sha256_hex is 64 hex digits, any case.
 * Returns 0. Pure. */
int rl_auth_sign(const unsigned char *secret, size_t secret_len, const char *ts,
                 size_t ts_len, const char *method, size_t method_len,
                 const char *path, size_t path_len, const char *body_sha256_hex,
                 char *out);

/* The request headers caller authentication reads (either mode), NULL
 * terminated: what a transport other than HTTP/1 (the gRPC listener)
 * must keep of a request for rl_auth_caller. */
extern const char *const rl_auth_caller_headers[];

/* Authenticates a caller under auth (mode hmac or bearer; mode none
 * accepts everyone) at wall-clock time now_s. Returns 0 with *caller set
 * (borrowed from the conf; NULL in mode none), or -1 with err filled:
 *   401 AUTH_002 a header is missing (or empty)
 *   401 AUTH_005 unknown X-Caller-Id
 *   401 AUTH_004 X-Caller-Timestamp not unix seconds or too far off
 *   401 AUTH_001 bad signature or unknown bearer key; also a repeated
 *                or malformed authentication header
 *   403 AUTH_003 the caller is suspended (its proof was valid) */
int rl_auth_caller(const rl_conf_auth_t *auth, const rl_auth_input_t *in,
                   int64_t now_s, const rl_principal_t **caller,
                   rl_auth_error_t *err);

/* Reads the one "Authorization: Bearer KEY" header among headers and
 * writes the lower-case hex SHA-256 of KEY into key_hex (65 bytes, NUL
 * terminated; the caller compares it in constant time with
 * rl_consttime_eq and wipes it). Returns 0, or -1 with err: 401 AUTH_002
 * when absent, empty or another scheme, 401 AUTH_001 when repeated. The
 * one bearer check of caller authentication and the admin endpoints.
 * Pure, any thread. */
int rl_auth_bearer_key(const rl_header_t *headers, int nheaders,
                       char key_hex[65], rl_auth_error_t *err);

/* Verifies the end client's tenant signature carried in req's headers
 * (X-Tenant-Id, X-Timestamp, X-Signature, optional X-Content-SHA256) over
 * req's method and target, for a policy with "verify_tenant": "hmac".
 * The same errors as rl_auth_caller, and 401 AUTH_001 when req->tenant is
 * set and is not X-Tenant-Id. Returns 0 with *tenant set to the verified
 * id (a NUL-terminated header value borrowed from req), or -1. */
int rl_auth_tenant(const rl_conf_t *conf, const rl_request_t *req,
                   int64_t now_s, const char **tenant, rl_auth_error_t *err);

/* Looks up a principal by id (len bytes) in a list sorted by id (as the
 * conf keeps them). NULL if none. */
const rl_principal_t *rl_auth_find(const rl_principal_t *list, int n,
                                   const char *id, size_t len);

/* Failed authentications, counted per source address (IPv4 address, or
 * IPv6 /64) in fixed windows of auth->failure_window_ms, in a table owned
 * by the calling thread (no lock). The table stores each address: one
 * that has not failed is never refused. It holds 8,192 addresses (8 per
 * hashed set); a new one takes a free or expired entry of its set, else
 * the one with the fewest failures. rl_auth_throttled returns 1, with
 * *retry_after_s set, while the address has reached auth->max_failures
 * in the current window; rl_auth_note_failure counts one failure. */
int rl_auth_throttled(const rl_conf_auth_t *auth, const struct sockaddr *peer,
                      int64_t now_ms, int64_t *retry_after_s);
void rl_auth_note_failure(const rl_conf_auth_t *auth,
                          const struct sockaddr *peer, int64_t now_ms);

/* Caller authentication of a request from peer as every front end does
 * it: a throttled address is refused before any check (429 RATE_001,
 * err->retry_after_s set), then rl_auth_caller at now_ms / 1000, and a
 * 401 counts as a failure of peer. Returns 0 with *caller set, or -1
 * with err filled. Mode none accepts everyone. */
int rl_auth_caller_from(const rl_conf_auth_t *auth, const struct sockaddr *peer,
                        const rl_auth_input_t *in, int64_t now_ms,
                        const rl_principal_t **caller, rl_auth_error_t *err);

/* Frees the calling thread's failure table; a worker calls it once its
 * loop has ended. */
void rl_auth_thread_cleanup(void);

#endif
