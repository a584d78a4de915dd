#ifndef RL_REQUEST_H
#define RL_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "errors.h"

/* A decision request, whatever front end it came from (JSON body of
 * /v1/decide, an item of /v1/decide/batch, the headers of /v1/authorize).
 * All strings are borrowed: they point into the JSON object or the HTTP
 * request they came from and live as long as it does. */

#define RL_MAX_REQ_HEADERS 64

typedef struct rl_header {
    const char *name; /* compared case-insensitively */
    size_t name_len;
    const char *value;
    size_t value_len;
} rl_header_t;

typedef struct rl_request {
    const char *method; /* upper-case; default "GET" */
    const char *path;   /* required; query string already stripped */
    size_t path_len;
    const char *target; /* the path with its query string, as sent (what a
                         * tenant signs); NULL = path/path_len */
    size_t target_len;
    const char *tenant; /* NULL if absent */
    const char *user;
    const char *ip;
    const char *policy;   /* force this policy by name; NULL = match */
    const char *key_path; /* what a "path" key holds (the lower-cased path
                           * under paths.case_sensitive false); NULL =
                           * path */
    size_t key_path_len;
    rl_header_t headers[RL_MAX_REQ_HEADERS];
    int nheaders;
    int64_t cost; /* >= 0, default 1; 0 = peek */
} rl_request_t;

/* Validation failure of a request: kind is RL_ERR_MISSING_FIELD,
 * RL_ERR_INVALID_FIELD or RL_ERR_BAD_PATH (errors.h), code its code
 * (static); message names the field, e.g. "path is required", "cost must
 * be a non-negative integer". */
typedef struct rl_request_error {
    rl_error_t kind;
    const char *code;
    char message[160];
} rl_request_error_t;

/* Fills req from a decide-shaped JSON object. Unknown fields are ignored.
 * Returns 0, or -1 with err filled. req borrows from obj. Pure. */
int rl_request_from_json(json_t *obj, rl_request_t *req,
                         rl_request_error_t *err);

/* The fast path of a /v1/decide body (len bytes): a flat JSON object of
 * printable-ASCII strings without escapes, integers, null and booleans,
 * read without jansson. Returns 0 with req filled exactly as
 * json_loadb + rl_request_from_json would fill it, its strings copied
 * NUL-terminated into scratch (cap bytes; req borrows from it); or -1
 * when the body is anything else, valid or not: parse it with jansson
 * then, which gives the request or the error reply. Pure. */
int rl_request_from_body(const char *body, size_t len, char *scratch,
                         size_t cap, rl_request_t *req);

/* 0 if path (len bytes, no query string) has no dot-segment: no "." or
 * ".." between separators, where '/', '\\', %2F, %5C separate and %2E is
 * a dot. A backend that resolves "/a/../b" to "/b" would otherwise be
 * limited under the wrong policy. -1 if it has one. Pure. */
int rl_request_path_safe(const char *path, size_t len);

/* Room for an address in its canonical form, and the longest text read
 * as one. */
#define RL_REQUEST_IP_MAX 128

/* Writes the address text p (len bytes) in its canonical form
 * (inet_ntop: "2001:DB8:0::8" -> "2001:db8::8") into buf
 * (RL_REQUEST_IP_MAX bytes), so that every spelling of one address is
 * one key, whichever front end read it. 0, or -1 when it is not an IPv4
 * or IPv6 address. Pure. */
int rl_request_ip_canon(const char *p, size_t len, char *buf);

/* Finds the first of the n headers named name, case-insensitively.
 * Returns its value (and length in *len if len is not NULL) or NULL.
 * Pure; shared by decision requests and parsed HTTP requests. */
static inline const char *rl_header_find(const rl_header_t *headers, int n,
                                         const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    int i;

    for (i = 0; i < n; i++) {
        const rl_header_t *h = &headers[i];

        if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0) {
            if (len != NULL) {
                *len = h->value_len;
            }
            return h->value;
        }
    }
    return NULL;
}

/* Finds a header of req by name (rl_header_find). */
const char *rl_request_header(const rl_request_t *req, const char *name,
                              size_t *len);

#endif
