#ifndef RL_PATH_H
#define RL_PATH_H

#include <stddef.h>
#include "conf.h"
#include "request.h"

/* Request path normalisation before matching ("paths" in the config,
 * docs/security.md): one pure function that every front end's request
 * goes through (rl_decide), so /v1/decide, batch items and /v1/authorize
 * match and key the same path. */

#define RL_PATH_NORMALIZE 1u /* decode, collapse, cut (see below) */
#define RL_PATH_LOWER 2u     /* lower-case letters outside %XX escapes */

/* The bytes out must hold for a path of len bytes: a '%' that starts
 * no escape becomes "%25" (3 bytes), and an empty input (or one that does
 * not start with "/") gains a "/". */
#define RL_PATH_OUT_LEN(len) (3 * (len) + 1)

/* Writes path (len bytes, no query string) into out (caller's, at least
 * RL_PATH_OUT_LEN(len) bytes, not NUL terminated) as flags ask. With
 * RL_PATH_NORMALIZE: %XX of an unreserved character (ALPHA, DIGIT, "-",
 * ".", "_", "~") is decoded, every other escape keeps its byte with its
 * hex digits upper-cased ("%2f" -> "%2F"), a '%' that starts no escape
 * is written "%25", ";params" are cut from each
 * segment, and empty segments are dropped (so "//" is "/", a trailing
 * "/" goes, "/" stays "/"). With RL_PATH_LOWER: ASCII letters are
 * lower-cased, the hex digits of escapes excepted. Returns the length
 * written, or -1 when the result has a "." or ".." segment
 * (rl_request_path_safe: "/a/%2e%2e/b" and "/a/..;x/b" are refused). Pure,
 * any thread. */
int rl_path_normalize(const char *path, size_t len, unsigned flags, char *out,
                      size_t *outlen);

/* Paths whose prepared copies fit this are prepared without malloc. */
#define RL_PATH_STACK 2048

/* Where rl_path_request puts the prepared paths: stack, or heap (owned;
 * rl_path_buf_free) for a longer path. */
typedef struct rl_path_buf {
    char stack[RL_PATH_STACK];
    char *heap;
} rl_path_buf_t;

/* Prepares req's path as pc asks. Returns req itself when pc leaves paths
 * as sent ("normalize" false, "case_sensitive" true); else *out, a copy
 * of req whose path (and, case_sensitive false, key_path: the path
 * lower-cased) is prepared in b. NULL with *bad 1 when the result has a
 * dot segment, *bad 0 when memory ran out. Free b with rl_path_buf_free
 * in every case, once out is no longer used. Pure but for the heap
 * buffer; any thread. */
const rl_request_t *rl_path_request(const rl_conf_paths_t *pc,
                                    const rl_request_t *req, rl_request_t *out,
                                    rl_path_buf_t *b, int *bad);

/* Frees what rl_path_request put in b (not b itself). */
void rl_path_buf_free(rl_path_buf_t *b);

#endif
