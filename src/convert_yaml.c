/* YAML text -> node tree (see convert_yaml.h). libyaml's events are
 * folded into nodes on an explicit stack, so no input recurses deeper
 * than RL_YAML_MAX_DEPTH here or in the callers' walks. The last
 * section types plain scalars as go-yaml v2 does, since what
 * envoyproxy/ratelimit refuses or reads differently depends on it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "convert_yaml.h"

#define RL_YAML_MAX_DEPTH 64
#define RL_YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* See convert_yaml.h. */
void rl_yaml_free(rl_yaml_t *y)
{
    size_t i;

    if (y == NULL) {
        return;
    }
    for (i = 0; i < y->n; i++) {
        rl_yaml_free(y->items[i]);
    }
    free(y->items);
    free(y->text);
    free(y);
}

/* Appends child to parent's items. 0 or -1 (out of memory). */
static int yaml_push(rl_yaml_t *parent, rl_yaml_t *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        rl_yaml_t **items = realloc(parent->items, cap * sizeof(*items));
        if (items == NULL) {
            return -1;
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

static int yaml_go_resolve(rl_yaml_t *y, size_t len);

/* The node a scalar or collection-start event opens; NULL when out of
 * memory. */
static rl_yaml_t *yaml_node(const yaml_event_t *ev)
{
    rl_yaml_t *y = calloc(1, sizeof(*y));

    if (y == NULL) {
        return NULL;
    }
    y->line = (int)ev->start_mark.line + 1;
    if (ev->type == YAML_SCALAR_EVENT) {
        /* A tag that yaml_scalar_problem let through makes it text. */
        y->kind = RL_YAML_SCALAR;
        y->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                   ev->data.scalar.tag == NULL;
        y->text = malloc(ev->data.scalar.length + 1);
        if (y->text == NULL) {
            free(y);
            return NULL;
        }
        memcpy(y->text, ev->data.scalar.value, ev->data.scalar.length);
        y->text[ev->data.scalar.length] = '\0';
        if (yaml_go_resolve(y, ev->data.scalar.length) != 0) {
            free(y->text);
            free(y);
            return NULL;
        }
    } else {
        y->kind =
            ev->type == YAML_SEQUENCE_START_EVENT ? RL_YAML_SEQ : RL_YAML_MAP;
    }
    return y;
}

/* Why scalar event ev is refused, or NULL. */
static const char *yaml_scalar_problem(const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;

    /* "\0" in a quoted scalar: C strings would end there, and a rule
     * for "admin\0x" must not become one for "admin". */
    if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length) != NULL) {
        return "a NUL byte (\\0) in a value is not supported";
    }
    /* go-yaml v2 reads !!str and local tags (!x) as text, as here, but
     * decodes !!binary and converts to !!int, !!float...: refused, so
     * no value means something else here. */
    if (tag != NULL &&
        strncmp(tag, RL_YAML_TAG_PREFIX, strlen(RL_YAML_TAG_PREFIX)) == 0 &&
        strcmp(tag + strlen(RL_YAML_TAG_PREFIX), "str") != 0) {
        return "YAML tags other than !!str (!!int, !!float, !!binary, ...) "
               "are not supported";
    }
    return NULL;
}

/* Reads the parser's events into root (one child per document). 0, or
 * -1 with *line and msg set. */
static int yaml_events(yaml_parser_t *p, rl_yaml_t *root, int *line, char *msg,
                       size_t msglen)
{
    rl_yaml_t *stack[RL_YAML_MAX_DEPTH + 1];
    const char *problem = NULL;
    int depth = 0;
    yaml_event_t ev;

    stack[0] = root;
    while (problem == NULL) {
        rl_yaml_t *y;

        if (!yaml_parser_parse(p, &ev)) {
            *line = (int)p->problem_mark.line + 1;
            snprintf(msg, msglen, "malformed YAML: %s",
                     p->problem ? p->problem : "parse error");
            return -1;
        }
        *line = (int)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: yaml_event_delete(&ev); return 0;
        case YAML_ALIAS_EVENT:
            problem = "YAML aliases (*name) are not supported";
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == RL_YAML_MAX_DEPTH) {
                problem = "nested too deeply";
                break;
            }
            /* fall through */
        case YAML_SCALAR_EVENT:
            if (ev.type == YAML_SCALAR_EVENT &&
                (problem = yaml_scalar_problem(&ev)) != NULL) {
                break;
            }
            y = yaml_node(&ev);
            if (y == NULL || yaml_push(stack[depth], y) != 0) {
                rl_yaml_free(y);
                problem = "out of memory";
            } else if (ev.type != YAML_SCALAR_EVENT) {
                stack[++depth] = y;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    snprintf(msg, msglen, "%s", problem);
    return -1;
}

/* See convert_yaml.h. */
int rl_yaml_parse(const char *text, size_t len, rl_yaml_t **doc, int *line,
                  char *msg, size_t msglen)
{
    yaml_parser_t p;
    rl_yaml_t root;
    int rc;

    memset(&root, 0, sizeof(root));
    *doc = NULL;
    *line = 1;
    if (!yaml_parser_initialize(&p)) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    rc = yaml_events(&p, &root, line, msg, msglen);
    yaml_parser_delete(&p);
    if (rc == 0 && root.n > 1) {
        *line = root.items[1]->line;
        snprintf(msg, msglen, "a second YAML document: one domain per file");
        rc = -1;
    }
    if (rc == 0 && root.n == 1) {
        *doc = root.items[0];
        root.n = 0;
    }
    while (root.n > 0) {
        rl_yaml_free(root.items[--root.n]);
    }
    free(root.items);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Plain scalars as go-yaml v2 types them (resolve.go, v2.4.0)         */
/* ------------------------------------------------------------------ */

#define YAML_DIGITS "0123456789"

/* Its words, in the only spellings it knows ("tRUE" is a string). */
static const struct {
    const char *word;
    rl_yaml_go_t type;
} yaml_go_words[] = {
    {"y", RL_YAML_GO_TRUE},      {"Y", RL_YAML_GO_TRUE},
    {"yes", RL_YAML_GO_TRUE},    {"Yes", RL_YAML_GO_TRUE},
    {"YES", RL_YAML_GO_TRUE},    {"true", RL_YAML_GO_TRUE},
    {"True", RL_YAML_GO_TRUE},   {"TRUE", RL_YAML_GO_TRUE},
    {"on", RL_YAML_GO_TRUE},     {"On", RL_YAML_GO_TRUE},
    {"ON", RL_YAML_GO_TRUE},     {"n", RL_YAML_GO_FALSE},
    {"N", RL_YAML_GO_FALSE},     {"no", RL_YAML_GO_FALSE},
    {"No", RL_YAML_GO_FALSE},    {"NO", RL_YAML_GO_FALSE},
    {"false", RL_YAML_GO_FALSE}, {"False", RL_YAML_GO_FALSE},
    {"FALSE", RL_YAML_GO_FALSE}, {"off", RL_YAML_GO_FALSE},
    {"Off", RL_YAML_GO_FALSE},   {"OFF", RL_YAML_GO_FALSE},
    {"", RL_YAML_GO_NIL},        {"~", RL_YAML_GO_NIL},
    {"null", RL_YAML_GO_NIL},    {"Null", RL_YAML_GO_NIL},
    {"NULL", RL_YAML_GO_NIL},    {".nan", RL_YAML_GO_FLOAT},
    {".NaN", RL_YAML_GO_FLOAT},  {".NAN", RL_YAML_GO_FLOAT},
    {".inf", RL_YAML_GO_FLOAT},  {".Inf", RL_YAML_GO_FLOAT},
    {".INF", RL_YAML_GO_FLOAT},  {"+.inf", RL_YAML_GO_FLOAT},
    {"+.Inf", RL_YAML_GO_FLOAT}, {"+.INF", RL_YAML_GO_FLOAT},
    {"-.inf", RL_YAML_GO_FLOAT}, {"-.Inf", RL_YAML_GO_FLOAT},
    {"-.INF", RL_YAML_GO_FLOAT},
};

/* Go's strconv.ParseUint(s, 0, 64) of s without underscores: 0 with
 * *out, or -1 (no such number, or past 2^64-1). "0x", "0o", "0b" pick
 * the base when a digit follows, a lone leading "0" is octal. */
static int yaml_go_uint(const char *s, uint64_t *out)
{
    unsigned base = 10;
    uint64_t n = 0;

    if (*s == '\0') {
        return -1;
    }
    if (s[0] == '0') {
        int p = s[1] | 0x20;

        base = 8;
        s++;
        if (s[0] != '\0' && s[1] != '\0' &&
            (p == 'b' || p == 'o' || p == 'x')) {
            base = p == 'b' ? 2 : p == 'x' ? 16 : 8;
            s++;
        }
    }
    for (; *s != '\0'; s++) {
        int c = *s | 0x20;
        unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                     : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 10)
                                            : 36;

        if (d >= base || n > (UINT64_MAX - d) / base) {
            return -1;
        }
        n = n * base + d;
    }
    *out = n;
    return 0;
}

/* Whether s (no underscores) matches v2's float pattern,
 * ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$, and is within a
 * double: strconv.ParseFloat fails past one (and rounds tiny ones). */
static int yaml_go_float(const char *s)
{
    const char *p = s + (*s == '+' || *s == '-');
    size_t n = strspn(p, YAML_DIGITS);

    if (n > 0) {
        p += n;
        p += *p == '.' ? 1 + strspn(p + 1, YAML_DIGITS) : 0;
    } else if (*p == '.' && (n = strspn(p + 1, YAML_DIGITS)) > 0) {
        p += 1 + n;
    } else {
        return 0;
    }
    if (*p == 'e' || *p == 'E') {
        p += 1 + (p[1] == '+' || p[1] == '-');
        if ((n = strspn(p, YAML_DIGITS)) == 0) {
            return 0;
        }
        p += n;
    }
    return *p == '\0' && !isinf(strtod(s, NULL));
}

/* Whether s's underscores pass Go's underscoreOK: each one between a
 * digit and a digit. */
static int yaml_go_underscores_ok(const char *s)
{
    char saw = '^';

    for (; *s != '\0'; s++) {
        if (*s >= '0' && *s <= '9') {
            saw = '0';
        } else if (*s == '_' ? saw != '0' : saw == '_') {
            return 0;
        } else {
            saw = *s == '_' ? '_' : '!';
        }
    }
    return saw != '_';
}

/* The go-yaml v2 type of a plain scalar that starts with a digit, a
 * sign or '.' (text and work, both len + 1 bytes), in resolve()'s
 * order: a leading '.' is for strconv.ParseFloat; otherwise with the
 * underscores dropped an int64, a uint64, a float by its pattern. */
static rl_yaml_go_t yaml_go_number(const char *text, char *work)
{
    size_t i, n = 0;
    uint64_t u;
    int sign = text[0] == '+' || text[0] == '-';

    if (text[0] == '.' && !yaml_go_underscores_ok(text)) {
        return RL_YAML_GO_STRING;
    }
    for (i = 0; text[i] != '\0'; i++) {
        if (text[i] != '_') {
            work[n++] = text[i];
        }
    }
    work[n] = '\0';
    if (text[0] != '.' && yaml_go_uint(work + sign, &u) == 0) {
        /* ParseInt takes one sign; ParseUint none. */
        if (u <= INT64_MAX ||
            (work[0] == '-' && u == (uint64_t)INT64_MAX + 1)) {
            return RL_YAML_GO_INT;
        }
        if (!sign) {
            return RL_YAML_GO_UINT64;
        }
    }
    return yaml_go_float(work) ? RL_YAML_GO_FLOAT : RL_YAML_GO_STRING;
}

/* Sets y->go for a scalar node y of len bytes. 0, or -1 (out of
 * memory). */
static int yaml_go_resolve(rl_yaml_t *y, size_t len)
{
    const char *s = y->text;
    char *work;
    size_t i;

    y->go = RL_YAML_GO_STRING;
    if (!y->plain) {
        return 0;
    }
    for (i = 0; i < sizeof(yaml_go_words) / sizeof(yaml_go_words[0]); i++) {
        if (strcmp(s, yaml_go_words[i].word) == 0) {
            y->go = yaml_go_words[i].type;
            return 0;
        }
    }
    if (!(*s >= '0' && *s <= '9') && *s != '+' && *s != '-' && *s != '.') {
        return 0;
    }
    if ((work = malloc(len + 1)) == NULL) {
        return -1;
    }
    y->go = yaml_go_number(s, work);
    free(work);
    return 0;
}

/* See convert_yaml.h. */
int rl_yaml_is_null(const rl_yaml_t *y)
{
    return y->kind == RL_YAML_SCALAR && y->go == RL_YAML_GO_NIL;
}
