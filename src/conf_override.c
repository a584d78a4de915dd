/* "policies[].overrides" and the one override parser, shared by the
 * config, the admin API and the workers' snapshots (override.h): "key"
 * names values for some of the policy's own key specs, "limits" go
 * through the policy limits parser (conf_limits, so a limit with the
 * same algorithm and period has the same key suffix and state carries
 * over), "deny" is {"status", "body"}. No shared state: any thread. */
#include "conf_policy.h"

#include <stdlib.h>
#include <string.h>
#include "override.h"
#include "reply.h"
#include "request.h"

#define CONF_MAX_OVERRIDES 1024

/* The index of spec among p's key fields, or -1. */
static int ovr_key_index(const rl_policy_t *p, const char *spec)
{
    int i;

    for (i = 0; i < p->nkey; i++) {
        if (strcmp(p->key[i].spec, spec) == 0) {
            return i;
        }
    }
    return -1;
}

/* "key": 1..8 of p's key specs, each to a non-empty string; an "ip"
 * that is an address is kept in the canonical form requests are keyed
 * by (rl_request_ip_canon), so any spelling of it matches. */
static int ovr_parse_key(conf_ctx_t *c, const rl_policy_t *p, const char *path,
                         json_t *v, rl_override_t *o)
{
    char sub[CONF_PATH_MAX], ip[RL_REQUEST_IP_MAX];
    const char *spec, *text;
    json_t *val;

    if (!json_is_object(v) || json_object_size(v) < 1 ||
        json_object_size(v) > RL_OVERRIDE_MAX_FIELDS) {
        return conf_fail(c, path,
                         "must be an object of 1 to %d key fields of policy "
                         "\"%s\"",
                         RL_OVERRIDE_MAX_FIELDS, p->name);
    }
    json_object_foreach(v, spec, val)
    {
        rl_override_field_t *f = &o->fields[o->nfields];

        conf_path_field(sub, sizeof(sub), path, spec);
        f->index = ovr_key_index(p, spec);
        if (f->index < 0) {
            return conf_fail(c, sub, "is not a key field of policy \"%s\"",
                             p->name);
        }
        if (!json_is_string(val) || json_string_length(val) == 0) {
            return conf_fail(c, sub, "must be a non-empty string");
        }
        /* The admin API reads bodies with NUL allowed; the store's copy
         * could not be read back, and inet_pton would stop at it. */
        if (strlen(json_string_value(val)) != json_string_length(val)) {
            return conf_fail(c, sub, "must not hold a NUL byte");
        }
        text = json_string_value(val);
        f->len = json_string_length(val);
        if (p->key[f->index].kind == RL_KEY_IP &&
            rl_request_ip_canon(text, f->len, ip) == 0) {
            text = ip;
            f->len = strlen(ip);
        }
        f->value = malloc(f->len + 1);
        if (f->value == NULL) {
            return conf_fail(c, sub, "out of memory");
        }
        memcpy(f->value, text, f->len + 1);
        o->nfields++;
    }
    return 0;
}

const char rl_override_no_retry_msg[] =
    "without a ttl there is no retry time: the body (or the policy's deny "
    "body it falls back to) cannot use {retry_after} or {retry_after_human}";

/* See override.h. */
int rl_override_retry_unfillable(const rl_override_t *o, const rl_policy_t *p,
                                 int64_t expires_at)
{
    return o->limits == NULL && expires_at == 0 &&
           conf_body_uses_retry(o->deny_body != NULL ? o->deny_body
                                                     : p->deny_body);
}

/* "deny": {"status": 400..599 (default the policy's), "body": any}. */
static int ovr_parse_deny(conf_ctx_t *c, const rl_policy_t *p, const char *path,
                          json_t *v, rl_override_t *o)
{
    char sub[CONF_PATH_MAX];
    const char *name;
    json_t *val;

    if (!json_is_object(v)) {
        return conf_fail(c, path, "must be an object");
    }
    o->deny_status = p->deny_status;
    json_object_foreach(v, name, val)
    {
        conf_path_field(sub, sizeof(sub), path, name);
        if (strcmp(name, "status") == 0) {
            if (!json_is_integer(val) || json_integer_value(val) < 400 ||
                json_integer_value(val) > 599) {
                return conf_fail(c, sub, "must be an integer from 400 to 599");
            }
            o->deny_status = (int)json_integer_value(val);
        } else if (strcmp(name, "body") == 0) {
            o->deny_body = json_deep_copy(val);
            if (o->deny_body == NULL) {
                return conf_fail(c, sub, "out of memory");
            }
            /* Compiled here, so a config and an admin override alike
             * stream their denials (freed in rl_override_clear). */
            if (conf_body_compile(c, sub, o->deny_body, &o->deny_tpl) != 0) {
                return -1;
            }
        } else {
            return conf_fail(c, sub, "unknown field");
        }
    }
    return 0;
}

/* {"policy", "key", "limits" | "deny"} of o as GET lists it, the key as
 * matched (an ip canonical), so one address is one stored override
 * whichever spelling a PUT or DELETE used. NULL when memory ran out. */
static json_t *ovr_json(const rl_policy_t *p, const rl_override_t *o,
                        json_t *limits, json_t *deny)
{
    json_t *key = json_object();
    int i;

    for (i = 0; key != NULL && i < o->nfields; i++) {
        json_object_set_new(key, p->key[o->fields[i].index].spec,
                            json_stringn(o->fields[i].value, o->fields[i].len));
    }
    return json_pack("{s:s, s:o, s:O}", "policy", p->name, "key", key,
                     limits != NULL ? "limits" : "deny",
                     limits != NULL ? limits : deny);
}

int rl_override_parse(const rl_policy_t *p, json_t *obj, const char *path,
                      int allow_extra, rl_override_t *out, char *err,
                      size_t errlen, int *missing)
{
    conf_ctx_t c = {err, errlen, NULL, 0};
    char sub[CONF_PATH_MAX];
    json_t *key, *limits, *deny;
    const char *name;
    json_t *val;

    memset(out, 0, sizeof(*out));
    *missing = 0;
    if (!json_is_object(obj)) {
        return conf_fail(&c, path[0] != '\0' ? path : "body",
                         "must be an object");
    }
    json_object_foreach(obj, name, val)
    {
        if (!allow_extra && strcmp(name, "key") != 0 &&
            strcmp(name, "limits") != 0 && strcmp(name, "deny") != 0) {
            conf_path_field(sub, sizeof(sub), path, name);
            return conf_fail(&c, sub, "unknown field");
        }
    }
    key = json_object_get(obj, "key");
    limits = json_object_get(obj, "limits");
    deny = json_object_get(obj, "deny");
    conf_path_field(sub, sizeof(sub), path, "key");
    if (key == NULL || json_is_null(key)) {
        *missing = 1;
        return conf_fail(&c, sub, "is required");
    }
    if (ovr_parse_key(&c, p, sub, key, out) != 0) {
        goto err;
    }
    if ((limits == NULL) == (deny == NULL)) {
        conf_path_field(sub, sizeof(sub), path, "limits");
        *missing = limits == NULL;
        conf_fail(&c, sub,
                  limits == NULL ? "is required (or \"deny\")"
                                 : "and \"deny\" exclude each other");
        goto err;
    }
    if (limits != NULL) {
        conf_path_field(sub, sizeof(sub), path, "limits");
        if (conf_limits(&c, sub, limits, "", &out->limits, &out->nlimits) !=
            0) {
            goto err;
        }
    } else {
        conf_path_field(sub, sizeof(sub), path, "deny");
        if (ovr_parse_deny(&c, p, sub, deny, out) != 0) {
            goto err;
        }
        /* A config override has no ttl (the admin API checks its own
         * with rl_override_retry_unfillable). */
        if (!allow_extra && rl_override_retry_unfillable(out, p, 0)) {
            conf_fail(&c, sub, "%s", rl_override_no_retry_msg);
            goto err;
        }
    }
    out->policy = strdup(p->name);
    out->json = ovr_json(p, out, limits, deny);
    if (out->policy == NULL || out->json == NULL) {
        conf_fail(&c, path, "out of memory");
        goto err;
    }
    return 0;

err:
    rl_override_clear(out);
    return -1;
}

/* Two overrides of one policy with the same key: the later would never
 * apply. 1 if a and b name the same fields and values. */
static int ovr_same_key(const rl_override_t *a, const rl_override_t *b)
{
    int i, j;

    if (a->nfields != b->nfields) {
        return 0;
    }
    for (i = 0; i < a->nfields; i++) {
        for (j = 0; j < b->nfields; j++) {
            if (a->fields[i].index == b->fields[j].index &&
                a->fields[i].len == b->fields[j].len &&
                memcmp(a->fields[i].value, b->fields[j].value,
                       a->fields[i].len) == 0) {
                break;
            }
        }
        if (j == b->nfields) {
            return 0;
        }
    }
    return 1;
}

int conf_overrides(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                   const void *arg)
{
    rl_policy_t *p = dst;
    char sub[CONF_PATH_MAX];
    rl_override_set_t *set;
    int missing;
    size_t i;
    int j;

    (void)arg;
    if (!json_is_array(v) || json_array_size(v) > CONF_MAX_OVERRIDES) {
        return conf_fail(c, path, "must be an array of at most %d overrides",
                         CONF_MAX_OVERRIDES);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    set = calloc(1, sizeof(*set));
    p->overrides = set;
    if (set == NULL || (set->items = calloc(json_array_size(v),
                                            sizeof(*set->items))) == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_override_t *o = &set->items[i];

        conf_path_index(sub, sizeof(sub), path, i);
        if (rl_override_parse(p, json_array_get(v, i), sub, 0, o, c->err,
                              c->errlen, &missing) != 0) {
            return -1;
        }
        set->n++;
        o->source = RL_OVERRIDE_CONFIG;
        json_object_set_new(o->json, "source", json_string("config"));
        for (j = 0; j < (int)i; j++) {
            if (ovr_same_key(&set->items[j], o)) {
                return conf_fail(c, sub, "same key as overrides[%d]", j);
            }
        }
    }
    return 0;
}

void conf_free_overrides(void *dst)
{
    rl_policy_t *p = dst;

    rl_override_set_free(p->overrides);
    p->overrides = NULL;
}
