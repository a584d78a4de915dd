/* Request path normalisation (see path.h). Pure: no allocation, no
 * state; every worker thread may call it at once. */
#include "path.h"

#include <stdlib.h>

#include "util.h"

/* 1 if c is an RFC 3986 unreserved character (section 2.3). */
static int path_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* c lower-cased when lower is set (ASCII letters only). */
static char path_case(char c, int lower)
{
    return lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Copies one segment s (n bytes, no '/') into out at *o, normalised: an
 * escape of an unreserved character decoded, any other escape with its
 * digits upper-cased, a '%' that starts no escape written "%25",
 * everything from ';' on cut. */
static void path_segment(const char *s, size_t n, int lower, char *out,
                         size_t *o)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;

    while (i < n && s[i] != ';') {
        int hi = i + 2 < n && s[i] == '%' ? rl_hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? rl_hex_value(s[i + 2]) : -1;

        if (lo < 0 && s[i] == '%') {
            /* Not an escape: encoded itself, so that no '%' of the result
             * reads differently in a second pass ("%4%41" -> "%254A"). */
            out[(*o)++] = '%';
            out[(*o)++] = '2';
            out[(*o)++] = '5';
            i++;
            continue;
        }
        if (lo < 0) {
            out[(*o)++] = path_case(s[i++], lower);
            continue;
        }
        if (path_unreserved(hi * 16 + lo)) {
            out[(*o)++] = path_case((char)(hi * 16 + lo), lower);
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[hi];
            out[(*o)++] = hex[lo];
        }
        i += 3;
    }
}

/* Normalises or only copies path into out; see path.h. */
int rl_path_normalize(const char *path, size_t len, unsigned flags, char *out,
                      size_t *outlen)
{
    int lower = (flags & RL_PATH_LOWER) != 0;
    size_t i = 0, o = 0, start, end;

    if (!(flags & RL_PATH_NORMALIZE)) {
        for (i = 0; i < len; i++) {
            out[i] = path_case(path[i], lower);
        }
        *outlen = len;
        return 0;
    }
    /* Every segment is written as "/" + its text; an empty one is taken
     * back, so "//", a trailing "/" and "/;x/" leave nothing. */
    while (i < len) {
        start = path[i] == '/' ? i + 1 : i;
        for (end = start; end < len && path[end] != '/'; end++) {
        }
        out[o++] = '/';
        path_segment(path + start, end - start, lower, out, &o);
        if (out[o - 1] == '/') {
            o--;
        }
        i = end;
    }
    if (o == 0) {
        out[o++] = '/';
    }
    *outlen = o;
    return rl_request_path_safe(out, o);
}

/* Prepares req into out and b; see path.h. */
const rl_request_t *rl_path_request(const rl_conf_paths_t *pc,
                                    const rl_request_t *req, rl_request_t *out,
                                    rl_path_buf_t *b, int *bad)
{
    unsigned flags = pc->normalize ? RL_PATH_NORMALIZE : 0;
    size_t n = RL_PATH_OUT_LEN(req->path_len);
    char *buf = b->stack;

    b->heap = NULL;
    *bad = 0;
    if (!pc->normalize && pc->case_sensitive) {
        return req;
    }
    if (2 * n > sizeof(b->stack)) {
        buf = b->heap = malloc(2 * n);
        if (buf == NULL) {
            return NULL;
        }
    }
    *out = *req;
    out->path = buf;
    if (rl_path_normalize(req->path, req->path_len, flags, buf,
                          &out->path_len) != 0) {
        *bad = 1;
        return NULL;
    }
    if (!pc->case_sensitive) {
        out->key_path = buf + n;
        rl_path_normalize(req->path, req->path_len, flags | RL_PATH_LOWER,
                          buf + n, &out->key_path_len);
    }
    return out;
}

void rl_path_buf_free(rl_path_buf_t *b)
{
    free(b->heap);
    b->heap = NULL;
}
