/* YAML text -> node tree (see convert_yaml.h). libyaml's events are
 * folded into nodes on an explicit stack, so no input recurses deeper
 * than RL_YAML_MAX_DEPTH here or in the callers' walks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "convert_yaml.h"

#define RL_YAML_MAX_DEPTH 64

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
        y->kind = RL_YAML_SCALAR;
        y->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        y->text = malloc(ev->data.scalar.length + 1);
        if (y->text == NULL) {
            free(y);
            return NULL;
        }
        memcpy(y->text, ev->data.scalar.value, ev->data.scalar.length);
        y->text[ev->data.scalar.length] = '\0';
    } else {
        y->kind =
            ev->type == YAML_SEQUENCE_START_EVENT ? RL_YAML_SEQ : RL_YAML_MAP;
    }
    return y;
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
            /* "\0" in a quoted scalar: C strings would end there, and a
             * rule for "admin\0x" must not become one for "admin". */
            if (ev.type == YAML_SCALAR_EVENT &&
                memchr(ev.data.scalar.value, '\0', ev.data.scalar.length) !=
                    NULL) {
                problem = "a NUL byte (\\0) in a value is not supported";
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

/* See convert_yaml.h. */
int rl_yaml_is_null(const rl_yaml_t *y)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    size_t i;

    if (y->kind != RL_YAML_SCALAR || !y->plain) {
        return 0;
    }
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strcmp(y->text, nulls[i]) == 0) {
            return 1;
        }
    }
    return 0;
}
