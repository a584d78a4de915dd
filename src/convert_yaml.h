#ifndef RL_CONVERT_YAML_H
#define RL_CONVERT_YAML_H

#include <stddef.h>

/* YAML text -> a small node tree with line numbers, for the converters
 * (libyaml's event parser underneath). Pure. Aliases (*name) and more
 * than one document are refused, as is nesting deeper than 64, so a
 * tree is always finite and small next to its text. */

typedef enum { RL_YAML_SCALAR, RL_YAML_SEQ, RL_YAML_MAP } rl_yaml_kind_t;

/* One node. A mapping's items are key, value, key, value, ... */
typedef struct rl_yaml {
    rl_yaml_kind_t kind;
    int line;   /* 1-based line where the node starts */
    char *text; /* scalars: the value, NUL-terminated */
    int plain;  /* scalars: written unquoted */
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
