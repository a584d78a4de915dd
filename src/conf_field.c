/* The field-descriptor driver and the parsers of single values (see
 * conf_field.h). Main thread only. */
#include "conf_field.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reply.h"
#include "util.h"

#define CONF_IDENT_MAX 64

/* ------------------------------------------------------------------------
 * Errors, paths and strings
 * ---------------------------------------------------------------------- */

/* 1 if path is the store section or inside it. */
static int conf_in_store(const char *path)
{
    return strncmp(path, "store", 5) == 0 &&
           (path[5] == '\0' || path[5] == '.' || path[5] == '[');
}

/* Formats the message and writes "path: message" into c->err. -1.
 * Inside "store" a message that starts by quoting the value ("\"%s\"
 * ...") says "the value" instead: an address may hold user:password, a
 * mistyped field a secret, and errors reach logs and /v1/policies. */
int conf_fail(conf_ctx_t *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    if (conf_in_store(path) && strncmp(fmt, "\"%s\"", 4) == 0) {
        (void)va_arg(ap, const char *);
        memcpy(msg, "the value", 10);
        vsnprintf(msg + 9, sizeof(msg) - 9, fmt + 4, ap);
    } else {
        vsnprintf(msg, sizeof(msg), fmt, ap);
    }
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", path, msg);
    return -1;
}

/* Writes the concatenation of a, b and c into out, cut to fit. */
static void conf_path_join(char *out, size_t outlen, const char *a,
                           const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t used = 0;
    size_t i;
    const char *s;

    for (i = 0; i < 3; i++) {
        for (s = parts[i]; *s != '\0' && used + 1 < outlen; s++) {
            out[used++] = *s;
        }
    }
    out[used] = '\0';
}

/* Joins parent and a field name into out ("store" + "timeout_ms"). */
void conf_path_field(char *out, size_t outlen, const char *parent,
                     const char *name)
{
    conf_path_join(out, outlen, parent, parent[0] == '\0' ? "" : ".", name);
}

/* Appends an array index to parent into out ("limits" + 2 -> "limits[2]"). */
void conf_path_index(char *out, size_t outlen, const char *parent, size_t i)
{
    char idx[32];

    snprintf(idx, sizeof(idx), "[%zu]", i);
    conf_path_join(out, outlen, parent, idx, "");
}

/* Replaces *dst (freed) by a copy of s. Returns 0 or -1 on no memory. */
int conf_set_str(conf_ctx_t *c, const char *path, char **dst, const char *s)
{
    char *copy = strdup(s);

    if (copy == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    free(*dst);
    *dst = copy;
    return 0;
}

/* 1 if s is 1..64 bytes of [A-Za-z0-9_.-] (policy names, key prefix). */
static int conf_is_ident(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= CONF_IDENT_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234"
                     "56789_.-") == n;
}

/* 1 if s is a non-empty HTTP header name (an RFC 9110 token). */
int conf_is_header_name(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789!#$%&'*+-.^_`|~") == n;
}

/* Lower-cases s in place. */
void conf_lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            *s = (char)(*s - 'A' + 'a');
        }
    }
}

/* ------------------------------------------------------------------------
 * The driver: parse, defaults, free
 * ---------------------------------------------------------------------- */

/* Checks obj against table t, parses each present field, then t->check;
 * see conf_field.h. */
int conf_object(conf_ctx_t *c, const char *path, json_t *obj,
                const conf_table_t *t, void *base)
{
    const conf_field_t *fields = t->fields;
    size_t nfields = t->n;
    char sub[CONF_PATH_MAX];
    const char *name;
    json_t *v;
    size_t i;

    if (!json_is_object(obj)) {
        return conf_fail(c, path, "must be an object");
    }
    json_object_foreach(obj, name, v)
    {
        for (i = 0; i < nfields; i++) {
            if (strcmp(fields[i].name, name) == 0) {
                break;
            }
        }
        if (i == nfields) {
            conf_path_field(sub, sizeof(sub), path, name);
            return conf_fail(c, sub, "unknown field");
        }
    }
    for (i = 0; i < nfields; i++) {
        conf_path_field(sub, sizeof(sub), path, fields[i].name);
        v = json_object_get(obj, fields[i].name);
        if (v == NULL) {
            if (fields[i].required) {
                return conf_fail(c, sub, "is required");
            }
            continue;
        }
        if (fields[i].parse(c, sub, v, (char *)base + fields[i].offset,
                            fields[i].arg) != 0) {
            return -1;
        }
    }
    return t->check != NULL ? t->check(c, path, obj, base) : 0;
}

/* A nested object: arg is its table, dst its struct. */
int conf_sub(conf_ctx_t *c, const char *path, json_t *v, void *dst,
             const void *arg)
{
    return conf_object(c, path, v, arg, dst);
}

/* A nested object allocated when present: see conf_field.h. */
int conf_sub_new(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                 const void *arg)
{
    const conf_alloc_t *a = arg;
    void **obj = dst;

    *obj = calloc(1, a->size);
    if (*obj == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    if (conf_table_defaults(c, a->table, *obj) != 0) {
        return -1;
    }
    return conf_object(c, path, v, a->table, *obj);
}

/* Runs each field's default (JSON text) through its own parser, and
 * recurses into nested objects. 0 or -1. */
int conf_table_defaults(conf_ctx_t *c, const conf_table_t *t, void *base)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        const conf_field_t *f = &t->fields[i];
        void *dst = (char *)base + f->offset;
        json_t *v;
        int rc;

        if (f->parse == conf_sub) {
            if (conf_table_defaults(c, f->arg, dst) != 0) {
                return -1;
            }
            continue;
        }
        if (f->def == NULL) {
            continue;
        }
        v = json_loads(f->def, JSON_DECODE_ANY, NULL);
        if (v == NULL) {
            return conf_fail(c, f->name, "out of memory");
        }
        rc = f->parse(c, f->name, v, dst, f->arg);
        json_decref(v);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

/* Calls each field's free function, and recurses into nested objects
 * (freeing those conf_sub_new allocated). */
void conf_table_free(const conf_table_t *t, void *base)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        const conf_field_t *f = &t->fields[i];
        void *dst = (char *)base + f->offset;

        if (f->parse == conf_sub) {
            conf_table_free(f->arg, dst);
        } else if (f->parse == conf_sub_new) {
            const conf_alloc_t *a = f->arg;
            void **obj = dst;

            if (*obj != NULL) {
                conf_table_free(a->table, *obj);
                free(*obj);
                *obj = NULL;
            }
        } else if (f->free != NULL) {
            f->free(dst);
        }
    }
}

/* free() of a char * field. */
void conf_free_str(void *dst)
{
    char **s = dst;

    free(*s);
    *s = NULL;
}

/* Overwrites, then frees, a char * field holding a secret. */
void conf_free_secret(void *dst)
{
    char **s = dst;

    if (*s != NULL) {
        rl_wipe(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* Drops a json_t * field. */
void conf_free_json(void *dst)
{
    json_t **j = dst;

    json_decref(*j);
    *j = NULL;
}

/* ------------------------------------------------------------------------
 * Parsers of single values
 * ---------------------------------------------------------------------- */

/* Reads an integer within range; writes it to *(int64_t *)dst. */
int conf_int64(conf_ctx_t *c, const char *path, json_t *v, void *dst,
               const void *arg)
{
    const conf_range_t *r = arg;
    json_int_t n;

    if (!json_is_integer(v) || (n = json_integer_value(v)) < r->min ||
        n > r->max) {
        return conf_fail(c, path, "must be an integer from %lld to %lld",
                         (long long)r->min, (long long)r->max);
    }
    *(int64_t *)dst = (int64_t)n;
    return 0;
}

/* Same as conf_int64 for an int field (ranges fit an int). */
int conf_int(conf_ctx_t *c, const char *path, json_t *v, void *dst,
             const void *arg)
{
    int64_t n = 0;

    if (conf_int64(c, path, v, &n, arg) != 0) {
        return -1;
    }
    *(int *)dst = (int)n;
    return 0;
}

/* Reads a string into *(char **)dst (replacing any default). */
int conf_string(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a [A-Za-z0-9_.-]{1,64} string into *(char **)dst. */
int conf_ident(conf_ctx_t *c, const char *path, json_t *v, void *dst,
               const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_ident(json_string_value(v))) {
        return conf_fail(
            c, path, "\"%s\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
            json_string_value(v));
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a header name, stored lower-case, into *(char **)dst. */
int conf_header_name(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_header_name(json_string_value(v))) {
        return conf_fail(c, path, "\"%s\" is not a header name",
                         json_string_value(v));
    }
    if (conf_set_str(c, path, dst, json_string_value(v)) != 0) {
        return -1;
    }
    conf_lower(*(char **)dst);
    return 0;
}

/* Looks s up in e; returns the item or NULL. */
const conf_enum_item_t *conf_enum_find(const conf_enum_t *e, const char *s)
{
    size_t i;

    for (i = 0; i < e->n; i++) {
        if (strcmp(e->items[i].name, s) == 0) {
            return &e->items[i];
        }
    }
    return NULL;
}

/* Reports that s is not one of e's names, listing them. */
int conf_enum_fail(conf_ctx_t *c, const char *path, const conf_enum_t *e,
                   const char *s)
{
    char list[256];
    size_t used = 0;
    size_t i;

    list[0] = '\0';
    for (i = 0; i < e->n && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s",
                         i == 0 ? "" : ", ", e->items[i].name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return conf_fail(c, path, "\"%s\" is not one of %s", s, list);
}

/* Reads one of e's names; writes its value to *(int *)dst. */
int conf_enum(conf_ctx_t *c, const char *path, json_t *v, void *dst,
              const void *arg)
{
    const conf_enum_t *e = arg;
    const conf_enum_item_t *it;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    it = conf_enum_find(e, json_string_value(v));
    if (it == NULL) {
        return conf_enum_fail(c, path, e, json_string_value(v));
    }
    *(int *)dst = it->value;
    return 0;
}

/* Reads one of e's names and keeps the name itself in *(char **)dst. */
int conf_enum_str(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                  const void *arg)
{
    int ignored;

    if (conf_enum(c, path, v, &ignored, arg) != 0) {
        return -1;
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a duration string ("10s", "5m") into *(int64_t *)dst, in ms. */
int conf_duration(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                  const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a duration string such as \"10s\"");
    }
    if (rl_duration_parse(json_string_value(v), dst) != RL_OK) {
        return conf_fail(c, path, "\"%s\" is not a duration",
                         json_string_value(v));
    }
    return 0;
}

/* Splits "host:port" or "[v6]:port" into a new *host and *port within
 * [minport, 65535]. */
int conf_hostport(conf_ctx_t *c, const char *path, json_t *v, char **host,
                  int *port, int minport)
{
    const char *s;
    const char *hs;
    const char *he;
    const char *ps;
    char *copy;
    long n;
    size_t plen;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (s[0] == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (he == NULL || he[1] != ':') {
            return conf_fail(c, path, "\"%s\" is not host:port", s);
        }
        ps = he + 2;
    } else {
        hs = s;
        he = strchr(s, ':');
        if (he == NULL || strchr(he + 1, ':') != NULL) {
            return conf_fail(c, path, "\"%s\" is not host:port", s);
        }
        ps = he + 1;
    }
    plen = strlen(ps);
    if (he == hs || plen == 0 || plen > 5 || strspn(ps, "0123456789") != plen) {
        return conf_fail(c, path, "\"%s\" is not host:port", s);
    }
    n = strtol(ps, NULL, 10);
    if (n < minport || n > 65535) {
        return conf_fail(c, path, "\"%s\": port must be from %d to 65535", s,
                         minport);
    }
    copy = strndup(hs, (size_t)(he - hs));
    if (copy == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    free(*host);
    *host = copy;
    *port = (int)n;
    return 0;
}

/* Reads true or false into *(int *)dst. */
int conf_bool(conf_ctx_t *c, const char *path, json_t *v, void *dst,
              const void *arg)
{
    if (!json_is_boolean(v)) {
        return conf_fail(c, path, "must be true or false");
    }
    *(int *)dst = json_is_true(v);
    return 0;
}

/* Reads the path of a file ratelimitd must be able to read, into
 * *(char **)dst. */
int conf_file(conf_ctx_t *c, const char *path, json_t *v, void *dst,
              const void *arg)
{
    const char *s;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (s[0] == '\0' || access(s, R_OK) != 0) {
        return conf_fail(c, path, "cannot read \"%s\": %s", s,
                         s[0] == '\0' ? "empty path" : strerror(errno));
    }
    return conf_set_str(c, path, dst, s);
}

/* Reads a number from 0 to 1 into *(double *)dst. */
int conf_fraction(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                  const void *arg)
{
    double d;

    if (!json_is_number(v) || (d = json_number_value(v)) < 0.0 || d > 1.0) {
        return conf_fail(c, path, "must be a number from 0 to 1");
    }
    *(double *)dst = d;
    return 0;
}

/* Reads 64 hex digits (a SHA-256), stored lower-case, into *(char **)dst.
 * The value is never echoed in the error. */
int conf_sha256(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                const void *arg)
{
    const char *s;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
        return conf_fail(
            c, path, "must be 64 hexadecimal digits (the SHA-256 of the key)");
    }
    if (conf_set_str(c, path, dst, s) != 0) {
        return -1;
    }
    conf_lower(*(char **)dst);
    return 0;
}

/* See conf_field.h. */
int conf_body_uses_retry(const json_t *body)
{
    const char *key;
    json_t *item;
    size_t i;

    if (body == NULL) {
        return 0;
    }
    switch (json_typeof(body)) {
    case JSON_STRING:
        return strstr(json_string_value(body), "{retry_after}") != NULL ||
               strstr(json_string_value(body), "{retry_after_human}") != NULL;
    case JSON_OBJECT:
        json_object_foreach((json_t *)body, key, item)
        {
            if (conf_body_uses_retry(item)) {
                return 1;
            }
        }
        return 0;
    case JSON_ARRAY:
        json_array_foreach(body, i, item)
        {
            if (conf_body_uses_retry(item)) {
                return 1;
            }
        }
        return 0;
    default: return 0;
    }
}

/* "deny.body": any JSON value, deep-copied into *(json_t **)dst. */
int conf_json(conf_ctx_t *c, const char *path, json_t *v, void *dst,
              const void *arg)
{
    json_t **out = dst;

    json_decref(*out);
    *out = json_deep_copy(v);
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    return 0;
}

/* See conf_field.h. */
int conf_body_compile(conf_ctx_t *c, const char *path, const json_t *body,
                      struct rl_body_tpl **tpl)
{
    if (body == NULL) {
        return 0;
    }
    *tpl = rl_reply_body_compile(body);
    return *tpl != NULL ? 0 : conf_fail(c, path, "out of memory");
}
