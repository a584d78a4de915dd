#ifndef RL_CONF_FIELD_H
#define RL_CONF_FIELD_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "conf.h"

/* The field-descriptor driver behind conf.c and its sections
 * (conf_policy.c, conf_auth.c, conf_store.c), in the manner of
 * twemproxy's nc_conf.c. Every JSON object is a table of descriptors;
 * each descriptor names its field, its parser, where the value goes, and
 * carries the field's default (JSON text run through the same parser
 * before the file is read) and the function that frees what the parser
 * left behind. So one table drives the parse, the defaults and the free,
 * and nothing mirrors it by hand. Errors read "path: problem", and no
 * error echoes a secret. Main thread only. */

#define CONF_PATH_MAX 256
#define CONF_NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct conf_ctx {
    char *err;
    size_t errlen;
    rl_conf_t *conf; /* being built */
    int cur_policy;  /* index of the policy being parsed */
} conf_ctx_t;

/* Parses JSON value v found at path into dst (a field of the C struct,
 * or the struct itself for composite fields). arg is the descriptor's.
 * 0, or -1 with the context's error set. */
typedef int conf_parse_fn(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                          const void *arg);

/* Frees what a parser left at dst (the same dst it was given); must be
 * safe on a zeroed or partly parsed value. */
typedef void conf_free_fn(void *dst);

typedef struct conf_field {
    const char *name;
    conf_parse_fn *parse;
    size_t offset;
    int required;
    const void *arg; /* a conf_table_t for conf_sub, conf_alloc_t for
                      * conf_sub_new */
    const char *def; /* default as JSON text ("50", "\"rl\""), or NULL */
    conf_free_fn *free;
} conf_field_t;

typedef struct conf_table {
    const conf_field_t *fields;
    size_t n;
    /* Checks across fields once all are parsed (v is the object), or
     * NULL. 0 or -1. */
    int (*check)(conf_ctx_t *c, const char *path, json_t *v, void *base);
} conf_table_t;

/* The arg of conf_sub_new: an object allocated only when present. */
typedef struct conf_alloc {
    const conf_table_t *table;
    size_t size; /* of the struct table describes */
} conf_alloc_t;

typedef struct conf_range {
    int64_t min;
    int64_t max;
} conf_range_t;

typedef struct conf_enum_item {
    const char *name;
    int value;
} conf_enum_item_t;

typedef struct conf_enum {
    const conf_enum_item_t *items;
    size_t n;
} conf_enum_t;

/* ---- errors and paths ---- */

/* Writes "path: message" into the context's error buffer; returns -1. */
int conf_fail(conf_ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Joins parent and a field name into out ("store" + "timeout_ms"). */
void conf_path_field(char *out, size_t outlen, const char *parent,
                     const char *name);

/* Appends an array index to parent into out ("limits" + 2 -> "limits[2]"). */
void conf_path_index(char *out, size_t outlen, const char *parent, size_t i);

/* Replaces *dst (freed) by a copy of s. 0, or -1 on no memory. */
int conf_set_str(conf_ctx_t *c, const char *path, char **dst, const char *s);

/* 1 if s is a non-empty HTTP header name (an RFC 9110 token). */
int conf_is_header_name(const char *s);

/* Lower-cases s in place. */
void conf_lower(char *s);

/* ---- the driver ---- */

/* Checks obj against table t: unknown fields and missing required ones
 * are errors; each present field is parsed into base + offset; then
 * t->check. 0 or -1. */
int conf_object(conf_ctx_t *c, const char *path, json_t *obj,
                const conf_table_t *t, void *base);

/* A nested object: arg is its conf_table_t, dst its struct. The
 * defaults and the free recurse into it. */
conf_parse_fn conf_sub;

/* A nested object allocated when present: arg is its conf_alloc_t, dst
 * the pointer (NULL when absent) that gets a new struct, filled with its
 * table's defaults and then parsed. The free recurses into it and frees
 * it. */
conf_parse_fn conf_sub_new;

/* Applies every default of t (recursing into conf_sub fields) to base,
 * which the caller zeroed. 0, or -1 (no memory). */
int conf_table_defaults(conf_ctx_t *c, const conf_table_t *t, void *base);

/* Frees what the parsers of t left in base (not base itself). */
void conf_table_free(const conf_table_t *t, void *base);

/* ---- parsers of single values ---- */

conf_parse_fn conf_int64;       /* int64_t within the conf_range_t arg */
conf_parse_fn conf_int;         /* int within the conf_range_t arg */
conf_parse_fn conf_bool;        /* int, 0 or 1 */
conf_parse_fn conf_string;      /* char *, any string */
conf_parse_fn conf_ident;       /* char *, [A-Za-z0-9_.-]{1,64} */
conf_parse_fn conf_header_name; /* char *, stored lower-case */
conf_parse_fn conf_enum;        /* int, a name of the conf_enum_t arg */
conf_parse_fn conf_enum_str;    /* char *, a name of the conf_enum_t arg */
conf_parse_fn conf_duration;    /* int64_t ms, from "10s" */
conf_parse_fn conf_fraction;    /* double, 0 to 1 */
conf_parse_fn conf_sha256;      /* char *, 64 hex digits, lower-cased */
conf_parse_fn conf_file;        /* char *, a readable file's path */
conf_parse_fn conf_json;        /* json_t *, any value, deep-copied */

/* 1 if a string of deny body (NULL: the default body) uses
 * {retry_after} or {retry_after_human}, which a denial without a retry
 * time (a deny override without ttl, paths.unmatched) cannot fill. */
int conf_body_uses_retry(const json_t *body);

/* Compiles body (NULL: nothing to compile) into *tpl (NULL before; the
 * caller owns it and frees it with rl_reply_body_free beside the body),
 * so a denial streams it (reply.h). 0, or -1 (no memory) naming path. */
int conf_body_compile(conf_ctx_t *c, const char *path, const json_t *body,
                      struct rl_body_tpl **tpl);

/* Looks s up in e; returns the item or NULL. */
const conf_enum_item_t *conf_enum_find(const conf_enum_t *e, const char *s);

/* Reports that s is not one of e's names, listing them. Returns -1. */
int conf_enum_fail(conf_ctx_t *c, const char *path, const conf_enum_t *e,
                   const char *s);

/* Splits "host:port" or "[v6]:port" into a new *host and *port within
 * [minport, 65535]. 0 or -1. */
int conf_hostport(conf_ctx_t *c, const char *path, json_t *v, char **host,
                  int *port, int minport);

/* ---- free functions for descriptors ---- */

conf_free_fn conf_free_str;    /* char *: free */
conf_free_fn conf_free_secret; /* char *: wipe, then free */
conf_free_fn conf_free_json;   /* json_t *: decref */

#endif
