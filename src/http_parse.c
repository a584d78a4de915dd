/* The HTTP/1.1 request parser (see http_parse.h): the request line and
 * headers, parsed in place, and the chunked body decoder. Pure: no I/O,
 * no libevent, no clock; any thread. */
#include "http_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "util.h"

/* ---------------------------------------------------------------------
 * Request head
 * ------------------------------------------------------------------- */

/* What parsing a head carries from one header to the next. */
typedef struct head_state {
    rl_http_req_t *r;
    int64_t *content_length;
    const char *te; /* the Transfer-Encoding value, if one was sent */
    int conn_close; /* "close" among the Connection options */
    int conn_keep;  /* "keep-alive" among them */
    const char **msg;
} head_state_t;

/* 1 if ch may stand in a token (a method or a header name). */
static int is_tchar(int ch)
{
    return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A caller's X-Request-Id is echoed only if it is short and plain, so it
 * cannot inject headers or bloat logs. */
static int request_id_ok(const char *v, size_t len)
{
    size_t i;
    if (len == 0 || len >= RL_HTTP_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.' && ch != ':') {
            return 0;
        }
    }
    return 1;
}

/* Refuses with status and msg: the parser's one error exit. */
static int parse_fail(const char **msg, const char *why, int status)
{
    *msg = why;
    return status;
}

/* Scans for the end of the head (see http_parse.h). Only LFs matter: the
 * byte before each must be a CR, and the line it ends is empty or not. */
int rl_http_parse_head_scan(rl_http_head_scan_t *st, const char *in, size_t len,
                            size_t *end, const char **msg)
{
    const char *p = in, *lf;
    size_t at;

    while ((lf = memchr(p, '\n', len - (size_t)(p - in))) != NULL) {
        at = st->pos + (size_t)(lf - in); /* the LF's offset */
        if ((lf > in ? lf[-1] : st->last) != '\r') {
            return parse_fail(msg, "bare LF (lines must end in CRLF)", 400);
        }
        if (at - st->line_start == 1 && st->line_start == st->skip) {
            /* An empty line before the request line. */
            if (++st->empty > RL_HTTP_EMPTY_LINES_MAX) {
                return parse_fail(msg, "empty lines before the request line",
                                  400);
            }
            st->skip = at + 1;
        } else if (at - st->line_start == 1) {
            *end = at + 1;
            return 1;
        }
        st->line_start = at + 1;
        p = lf + 1;
    }
    if (len > 0) {
        st->last = in[len - 1];
    }
    st->pos += len;
    return 0;
}

/* Checks the method, target and version of the NUL-terminated request
 * line p (split in place at its two spaces) and fills r from it. */
static int parse_request_line(char *p, rl_http_req_t *r, const char **msg)
{
    char *sp1 = strchr(p, ' '), *sp2, *q;
    int http10;

    if (sp1 == NULL) {
        return parse_fail(msg, "malformed request line", 400);
    }
    *sp1 = '\0';
    sp2 = strchr(sp1 + 1, ' ');
    if (sp2 == NULL) {
        return parse_fail(msg, "malformed request line", 400);
    }
    *sp2 = '\0';
    for (q = p; *q; q++) {
        if (!is_tchar((unsigned char)*q)) {
            return parse_fail(msg, "malformed method", 400);
        }
    }
    if (*p == '\0') {
        return parse_fail(msg, "malformed method", 400);
    }
    if (sp1[1] != '/') {
        return parse_fail(msg, "request target must start with /", 400);
    }
    for (q = sp1 + 1; *q; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f) {
            return parse_fail(msg, "malformed request target", 400);
        }
    }
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0) {
        http10 = 0;
    } else if (strcmp(sp2 + 1, "HTTP/1.0") == 0) {
        http10 = 1;
    } else {
        return parse_fail(msg, "unsupported HTTP version", 400);
    }
    r->method = p;
    r->target = sp1 + 1;
    r->path = r->target;
    q = strchr(r->target, '?');
    r->path_len = q != NULL ? (size_t)(q - r->target) : strlen(r->target);
    r->keep_alive = !http10;
    return 0;
}

/* Notes close and keep-alive among the comma-separated options of a
 * Connection value (RFC 9110 7.6.1: a list, names case-insensitive,
 * empty elements allowed); other options are ignored. */
static void connection_options(head_state_t *h, const char *v)
{
    while (*v != '\0') {
        size_t n = strcspn(v, ","), k = n;

        while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t')) {
            k--;
        }
        if (k == 5 && strncasecmp(v, "close", 5) == 0) {
            h->conn_close = 1;
        } else if (k == 10 && strncasecmp(v, "keep-alive", 10) == 0) {
            h->conn_keep = 1;
        }
        v += n;
        v += strspn(v, ", \t");
    }
}

/* Acts on the headers that frame or steer the request (name and value
 * NUL-terminated, value vlen bytes). */
static int apply_header(head_state_t *h, const char *name, const char *v,
                        size_t vlen)
{
    const char *q;

    if (strcasecmp(name, "content-length") == 0) {
        int64_t n = 0;
        if (*v == '\0') {
            return parse_fail(h->msg, "invalid Content-Length", 400);
        }
        for (q = v; *q; q++) {
            if (!isdigit((unsigned char)*q) || n > (INT64_MAX - 9) / 10) {
                return parse_fail(h->msg, "invalid Content-Length", 400);
            }
            n = n * 10 + (*q - '0');
        }
        if (*h->content_length >= 0 && *h->content_length != n) {
            return parse_fail(h->msg, "conflicting Content-Length headers",
                              400);
        }
        *h->content_length = n;
    } else if (strcasecmp(name, "transfer-encoding") == 0) {
        if (h->te != NULL) {
            return parse_fail(h->msg, "repeated Transfer-Encoding", 400);
        }
        h->te = v;
    } else if (strcasecmp(name, "connection") == 0) {
        connection_options(h, v);
    } else if (strcasecmp(name, "x-request-id") == 0) {
        if (request_id_ok(v, vlen)) {
            memcpy(h->r->id, v, vlen + 1);
        }
    }
    return 0;
}

/* Parses the header line p .. line_end (its CR), in place: checks the
 * name and value, records the header in the request and applies it. */
static int parse_header_line(head_state_t *h, char *p, char *line_end)
{
    rl_http_req_t *r = h->r;
    char *colon, *v, *ve, *q;

    if (*p == ' ' || *p == '\t') {
        return parse_fail(h->msg, "obsolete header folding", 400);
    }
    *line_end = '\0';
    colon = strchr(p, ':');
    if (colon == NULL || colon == p) {
        return parse_fail(h->msg, "malformed header", 400);
    }
    for (q = p; q < colon; q++) {
        /* No space before the colon: a smuggling shape (RFC 9112 5.1). */
        if (!is_tchar((unsigned char)*q)) {
            return parse_fail(h->msg, "malformed header name", 400);
        }
    }
    v = colon + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    ve = line_end;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }
    *ve = '\0';
    for (q = v; q < ve; q++) {
        if ((unsigned char)*q < 0x20 && *q != '\t') {
            return parse_fail(h->msg, "control byte in header", 400);
        }
    }
    if (r->nheaders == RL_HTTP_MAX_HEADERS) {
        return parse_fail(h->msg, "too many headers", 431);
    }
    r->headers[r->nheaders].name = p;
    r->headers[r->nheaders].name_len = (size_t)(colon - p);
    r->headers[r->nheaders].value = v;
    r->headers[r->nheaders].value_len = (size_t)(ve - v);
    *colon = '\0';
    r->nheaders++;
    return apply_header(h, p, v, (size_t)(ve - v));
}

/* Parses the request line and headers in place (see http_parse.h). */
int rl_http_parse_head(char *head, size_t head_len, rl_http_req_t *r,
                       int64_t *content_length, int *chunked, const char **msg)
{
    char *end = head + head_len - 2; /* points at the final CRLF */
    char *p = head, *line_end;
    head_state_t h = {r, content_length, NULL, 0, 0, msg};
    int rc;

    line_end = memchr(p, '\r', (size_t)(end - p));
    if (line_end == NULL || line_end[1] != '\n') {
        return parse_fail(msg, "malformed request line", 400);
    }
    *line_end = '\0';
    rc = parse_request_line(p, r, msg);
    p = line_end + 2;
    while (rc == 0 && p < end) {
        line_end = memchr(p, '\r', (size_t)(end - p + 1));
        if (line_end == NULL || line_end[1] != '\n') {
            return parse_fail(msg, "malformed header", 400);
        }
        rc = parse_header_line(&h, p, line_end);
        p = line_end + 2;
    }
    if (rc != 0) {
        return rc;
    }
    /* Every Connection line is one list: close wins wherever it is. */
    if (h.conn_close) {
        r->keep_alive = 0;
    } else if (h.conn_keep) {
        r->keep_alive = r->keep_alive ? 1 : 2; /* HTTP/1.0 opts in */
    }
    if (h.te == NULL) {
        return 0;
    }
    /* Both framings at once is the classic smuggling shape: refuse. */
    if (*content_length >= 0) {
        return parse_fail(msg, "both Content-Length and Transfer-Encoding",
                          400);
    }
    if (strcasecmp(h.te, "chunked") != 0) {
        return parse_fail(msg, "unsupported Transfer-Encoding", 501);
    }
    *chunked = 1;
    return 0;
}

/* Header lookup on a parsed request (see http.h). */
const char *rl_http_header(const rl_http_req_t *req, const char *name,
                           size_t *len)
{
    return rl_header_find(req->headers, req->nheaders, name, len);
}

/* ---------------------------------------------------------------------
 * Chunked bodies
 * ------------------------------------------------------------------- */

/* Grows b to need bytes exactly (see http_parse.h). */
int rl_http_parse_body_reserve(rl_http_body_t *b, size_t need)
{
    char *nb;

    if (need <= b->cap) {
        return RL_OK;
    }
    nb = realloc(b->data, need);
    if (nb == NULL) {
        return RL_ERR;
    }
    b->data = nb;
    b->cap = need;
    return RL_OK;
}

/* A fresh decoder state for the next chunked body. */
void rl_http_parse_chunked_init(rl_http_chunked_t *st)
{
    memset(st, 0, sizeof(*st));
}

/* Counts n bytes of framing (size lines, extensions, CRLFs, trailers)
 * against max_framing. 0, or 431 once the body's framing passes it. */
static int chunk_framing(rl_http_chunked_t *st, size_t n, int64_t max_framing,
                         const char **msg)
{
    st->framing += n;
    if (st->framing > (uint64_t)max_framing) {
        return parse_fail(msg, "chunk extensions and trailers too large", 431);
    }
    return 0;
}

/* One byte of a chunk-size line: 1 to RL_HTTP_CHUNK_DIGITS_MAX hex
 * digits, then an optional ;extension, then CRLF. Returns 1 when ch ended
 * the line, 0 when more is needed, or 400 with *msg at the first byte
 * that cannot belong to a size line. */
static int chunk_size_byte(rl_http_chunked_t *st, char ch, const char **msg)
{
    int d;

    if (st->line_cr) {
        st->line_cr = 0;
        if (ch != '\n' || st->digits == 0) {
            return parse_fail(msg, "malformed chunk size", 400);
        }
        return 1;
    }
    if (ch == '\r') {
        st->line_cr = 1;
        return 0;
    }
    if (st->in_ext) {
        if (ch == '\n' || ((unsigned char)ch < 0x20 && ch != '\t')) {
            return parse_fail(msg, "malformed chunk extension", 400);
        }
        return 0;
    }
    if (ch == ';' && st->digits > 0) {
        st->in_ext = 1;
        return 0;
    }
    d = rl_hex_value(ch); /* digits only, no sign, no 0x */
    if (d < 0 || st->digits == RL_HTTP_CHUNK_DIGITS_MAX) {
        return parse_fail(msg, "malformed chunk size", 400);
    }
    st->size = st->size << 4 | (uint64_t)d;
    st->digits++;
    return 0;
}

/* Adds ch to the trailer line being read; returns 1 when it ended the
 * line (a CRLF, not counted in line_len), else 0. */
static int chunk_line_byte(rl_http_chunked_t *st, char ch)
{
    if (ch == '\n' && st->line_cr) {
        st->line_len--; /* the CR */
        st->line_cr = 0;
        return 1;
    }
    st->line_len++;
    st->line_cr = ch == '\r';
    return 0;
}

/* A complete chunk-size line: checks the body limit, makes room for the
 * chunk and moves on to its data (or to the trailers after the last
 * chunk). 0 or an HTTP status. */
static int chunk_size_line(rl_http_chunked_t *st, rl_http_body_t *body,
                           int64_t max_body, const char **msg)
{
    uint64_t n = st->size;

    st->size = 0;
    st->digits = 0;
    st->in_ext = 0;
    if (n > (uint64_t)max_body || body->len + n > (uint64_t)max_body) {
        return parse_fail(msg, "request body too large", 413);
    }
    if (n == 0) {
        /* Last chunk: trailers (ignored) end with an empty line. */
        st->state = RL_HTTP_CHUNK_TRAILER;
        st->line_len = 0;
        return 0;
    }
    if (body->len + n + 1 > body->cap) {
        size_t cap = body->cap ? body->cap : 1024;
        while (cap < body->len + n + 1) {
            cap *= 2;
        }
        if (rl_http_parse_body_reserve(body, cap) != RL_OK) {
            return parse_fail(msg, "out of memory", 503);
        }
    }
    st->left = n;
    st->ncrlf = 0;
    st->state = RL_HTTP_CHUNK_DATA;
    return 0;
}

/* One step in the DATA or DATA_END state: copies chunk data or checks the
 * CRLF after it. Returns the bytes of in it took, setting *rc to an HTTP
 * status on error. */
static size_t chunk_data(rl_http_chunked_t *st, const char *in, size_t len,
                         rl_http_body_t *body, int *rc, const char **msg)
{
    size_t k;

    if (st->state == RL_HTTP_CHUNK_DATA) {
        k = st->left < len ? (size_t)st->left : len;
        memcpy(body->data + body->len, in, k);
        body->len += k;
        st->left -= k;
        if (st->left == 0) {
            st->state = RL_HTTP_CHUNK_DATA_END;
        }
        return k;
    }
    st->crlf[st->ncrlf++] = in[0];
    if (st->ncrlf == 2) {
        if (st->crlf[0] != '\r' || st->crlf[1] != '\n') {
            *rc = parse_fail(msg, "malformed chunk", 400);
        }
        st->state = RL_HTTP_CHUNK_SIZE;
    }
    return 1;
}

/* Decodes the next input of a chunked body (see http_parse.h). */
int rl_http_parse_chunked(rl_http_chunked_t *st, const char *in, size_t len,
                          int last, rl_http_body_t *body, int64_t max_body,
                          int64_t max_framing, size_t *used, const char **msg)
{
    size_t i = 0;
    int rc = 0;

    (void)last;
    while (i < len && rc == 0) {
        if (st->state == RL_HTTP_CHUNK_DATA) {
            i += chunk_data(st, in + i, len - i, body, &rc, msg);
            continue;
        }
        /* Every byte but chunk data is framing, bounded as a whole. */
        if (chunk_framing(st, 1, max_framing, msg) != 0) {
            return 431;
        }
        if (st->state == RL_HTTP_CHUNK_DATA_END) {
            i += chunk_data(st, in + i, len - i, body, &rc, msg);
        } else if (st->state == RL_HTTP_CHUNK_SIZE) {
            rc = chunk_size_byte(st, in[i++], msg);
            if (rc == 1) {
                rc = chunk_size_line(st, body, max_body, msg);
            }
        } else if (chunk_line_byte(st, in[i++])) {
            if (st->line_len == 0) {
                *used = i; /* the empty line that ends the trailers */
                return 1;
            }
            st->line_len = 0;
        }
    }
    return rc;
}
