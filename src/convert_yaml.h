#ifndef RL_CONVERT_YAML_H
#define RL_CONVERT_YAML_H

#include <stddef.h>

/* YAML text -> a small node tree with line numbers, for the converters
 * (libyaml's event parser underneath). Pure. Aliases (*name) and more
 * than one document are refused, as is nesting deeper than 64, so a
 * tree is always finite and small next to its text. A scalar tagged
 * !!str, or with a local tag (!name), is text as if quoted; any other
 * tag of the YAML type library (!!int, !!float, !!binary, ...) is
 * refused. */

typedef enum { RL_YAML_SCALAR, RL_YAML_SEQ, RL_YAML_MAP } rl_yaml_kind_t;

/* What go-yaml v2, envoyproxy/ratelimit's parser, makes of a scalar
 * when it loads a file into generic maps (its YAML 1.1 resolve.go), as
 * its key check validateYamlKeys then sees the value. */
typedef enum {
    RL_YAML_GO_STRING, /* also quoted or tagged text, and dates: v2 hands
                        * a timestamp to a generic map as its text */
    RL_YAML_GO_NIL,
    RL_YAML_GO_FALSE,
    RL_YAML_GO_TRUE,
    RL_YAML_GO_INT,    /* fits an int64: 010, 0x1F, 1_000, -5 */
    RL_YAML_GO_UINT64, /* 2^63 to 2^64-1 */
    RL_YAML_GO_FLOAT   /* 1.5, 1e3, .5, .inf, 09 (not octal); 1e400,
                        * past a double, stays a string */
} rl_yaml_go_t;

/* One node. A mapping's items are key, value, key, value, ... */
typedef struct rl_yaml {
    rl_yaml_kind_t kind;
    int line;        /* 1-based line where the node starts */
    char *text;      /* scalars: the value, NUL-terminated */
    int plain;       /* scalars: written unquoted and untagged */
    rl_yaml_go_t go; /* scalars: the go-yaml v2 type */
    struct rl_yaml **items;
    size_t n, cap;
} rl_yaml_t;

/* Parses text (len bytes) into *doc, the top node of its one document,
 * NULL for an empty text. 0, or -1 with *line and the problem in msg.
 * The caller frees *doc with rl_yaml_free. Any thread. */
int rl_yaml_parse(const char *text, size_t len, rl_yaml_t **doc, int *line,
                  char *msg, size_t msglen);

/* Frees a node and everything under it (NULL is fine). */
void rl_yaml_free(rl_yaml_t *y);

/* Whether y is YAML's null (an unquoted "", "~", "null"). */
int rl_yaml_is_null(const rl_yaml_t *y);

#endif
