#ifndef RL_HTTP_PARSE_H
#define RL_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include "http.h"

/* The HTTP/1.1 parser of the server in http*.c: pure code, no I/O and no
 * libevent. Bytes go in; a parsed request head, or a decoded chunked
 * body, comes out, or the HTTP status (with a static message) to refuse
 * the request with. The connection (http_conn.c) feeds it what it read.
 * Any thread; each state belongs to one caller. */

/* Empty lines (CRLF) ignored before a request line (RFC 9112 2.2: some
 * clients send one after a body); one more is refused. */
#define RL_HTTP_EMPTY_LINES_MAX 4

/* Where the search for the end of a request head is: zeroed for each
 * request. Offsets count from the first byte of the request's input,
 * empty lines before its request line included. */
typedef struct rl_http_head_scan {
    size_t pos;        /* bytes scanned so far */
    size_t skip;       /* the empty lines before the request line */
    size_t line_start; /* where the line being scanned starts */
    int empty;         /* how many of those empty lines */
    char last;         /* the byte before pos */
} rl_http_head_scan_t;

/* Scans the next len bytes at in of a request's input for the end of its
 * head, the first empty line after a request line. Every line must end
 * in CRLF: a bare LF is refused as soon as it arrives, so a client that
 * ends its lines with LF alone gets an answer, not the read timeout.
 * Returns 0 when more is needed (st->pos > st->skip once a byte of the
 * request line has arrived), 1 when the head is input[st->skip .. *end),
 * which ends in CRLFCRLF, or 400 with *msg. */
int rl_http_parse_head_scan(rl_http_head_scan_t *st, const char *in, size_t len,
                            size_t *end, const char **msg);

/* Parses a request head in place: head is writable, head_len bytes long
 * and ends in CRLFCRLF (a NUL at head[head_len] is not required). On
 * entry r is zeroed, *content_length is -1 and *chunked 0. Fills r's
 * method, target, path, headers, keep_alive (the version, then the
 * options of every Connection line as one list: close wins, keep-alive
 * keeps an HTTP/1.0 one) and id (an acceptable X-Request-Id),
 * *content_length and *chunked; r's strings point into
 * head. Returns 0, or the HTTP status to refuse the request with (400,
 * 431, 501) and *msg. Rejects what request smuggling is made of:
 * Content-Length with Transfer-Encoding, conflicting Content-Lengths,
 * repeated Transfer-Encoding, obsolete line folding, spaces before a
 * colon, control bytes. */
int rl_http_parse_head(char *head, size_t head_len, rl_http_req_t *r,
                       int64_t *content_length, int *chunked, const char **msg);

/* A request body being collected: data (malloc'ed, owned by whoever holds
 * the struct) holds len bytes of cap. */
typedef struct rl_http_body {
    char *data;
    size_t len;
    size_t cap;
} rl_http_body_t;

/* Grows b to at least need bytes: exactly, so ten thousand kept-alive
 * connections hold only their last small body. RL_OK, or RL_ERR when
 * memory runs out (b unchanged). */
int rl_http_parse_body_reserve(rl_http_body_t *b, size_t need);

/* Where the chunked decoder is: in a chunk-size line, in a chunk's data,
 * in the CRLF after it, or in the trailers after the last chunk. */
typedef enum {
    RL_HTTP_CHUNK_SIZE = 0,
    RL_HTTP_CHUNK_DATA,
    RL_HTTP_CHUNK_DATA_END,
    RL_HTTP_CHUNK_TRAILER
} rl_http_chunk_state_t;

#define RL_HTTP_CHUNK_DIGITS_MAX 16 /* hex digits of a chunk size */

/* The chunked decoder's state between calls; zeroed (with
 * rl_http_parse_chunked_init) for each request. */
typedef struct rl_http_chunked {
    rl_http_chunk_state_t state;
    uint64_t size;    /* SIZE: the chunk size read so far */
    int digits;       /* SIZE: its hex digits so far */
    int in_ext;       /* SIZE: inside a ;extension */
    size_t line_len;  /* TRAILER: bytes of the current line so far */
    int line_cr;      /* the line's last byte was CR */
    uint64_t left;    /* DATA: bytes of the chunk to come */
    uint64_t framing; /* bytes other than chunk data so far */
    char crlf[2];     /* DATA_END: the bytes after it */
    int ncrlf;
} rl_http_chunked_t;

/* Starts decoding a new chunked body. */
void rl_http_parse_chunked_init(rl_http_chunked_t *st);

/* Decodes the len bytes at in (the next input of the body), appending
 * the data of each chunk to body, which grows by doubling from 1 KB. The
 * body may hold max_body bytes at most. A chunk size is 1 to
 * RL_HTTP_CHUNK_DIGITS_MAX hex digits (no sign, no 0x, no spaces), then
 * an optional ;extension. Everything but chunk data (size lines with
 * their extensions, the CRLFs, the trailers) is framing, max_framing
 * bytes in all: the body's bytes on the wire are at most max_body +
 * max_framing. `last` is set when in ends the input that has arrived
 * (kept for callers; every check is made as the bytes arrive). Returns
 * 0 when it needs more, 1 when the body is complete (*used: the bytes of
 * in that belong to it; the rest is the next request), or an HTTP status
 * (400, 413, 431 past max_framing, 503) with *msg. */
int rl_http_parse_chunked(rl_http_chunked_t *st, const char *in, size_t len,
                          int last, rl_http_body_t *body, int64_t max_body,
                          int64_t max_framing, size_t *used, const char **msg);

#endif
