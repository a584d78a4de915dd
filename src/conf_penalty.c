/* The top-level "penalties" section and the load-time rule that makes
 * layered policies (groups, penalties) decidable in one script on a Redis
 * Cluster. Main thread only, like the rest of the config reader. */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conf_policy.h"
#include "reply.h"

#define CONF_MAX_PENALTIES 64

static const conf_range_t range_denials = {1, 1000000};
static const conf_range_t range_deny_status = {400, 599};

/* "key" of a penalty: 1..8 of tenant, user, ip, method, header.NAME;
 * dst is the penalty. */
static int conf_penalty_key(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    rl_penalty_t *pen = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > RL_MAX_HASH_TAG) {
        return conf_fail(c, path, "must be an array of 1 to %d key fields",
                         RL_MAX_HASH_TAG);
    }
    for (i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));

        conf_path_index(sub, sizeof(sub), path, i);
        if (s != NULL && strcmp(s, "tenant") != 0 && strcmp(s, "user") != 0 &&
            strcmp(s, "ip") != 0 && strcmp(s, "method") != 0 &&
            strncmp(s, "header.", 7) != 0) {
            return conf_fail(c, sub,
                             "must be one of tenant, user, ip, method, "
                             "header.NAME");
        }
    }
    return conf_key_list(c, path, v, NULL, &pen->key, &pen->nkey);
}

/* Frees a penalty's key fields; dst is the penalty. */
static void conf_free_penalty_key(void *dst)
{
    rl_penalty_t *pen = dst;

    conf_key_list_free(&pen->key, &pen->nkey);
}

/* "deny" of a penalty: fields of the penalty itself. */
static const conf_field_t penalty_deny_fields[] = {
    {"status", conf_int, offsetof(rl_penalty_t, deny_status), 0,
     &range_deny_status, NULL, NULL},
    {"body", conf_json, offsetof(rl_penalty_t, deny_body), 0, NULL, NULL,
     conf_free_json},
};

/* "deny" of a penalty as a whole: the body compiled once (freed in
 * conf_free_penalties). */
static int conf_penalty_deny_check(conf_ctx_t *c, const char *path, json_t *v,
                                   void *base)
{
    rl_penalty_t *pen = base;

    (void)v;
    return conf_body_compile(c, path, pen->deny_body, &pen->deny_tpl);
}
static const conf_table_t penalty_deny_table = {penalty_deny_fields,
                                                CONF_NELEM(penalty_deny_fields),
                                                conf_penalty_deny_check};

static const conf_field_t penalty_fields[] = {
    {"name", conf_ident, offsetof(rl_penalty_t, name), 1, NULL, NULL,
     conf_free_str},
    {"key", conf_penalty_key, 0, 1, NULL, NULL, conf_free_penalty_key},
    {"denials", conf_int64, offsetof(rl_penalty_t, denials), 1, &range_denials,
     NULL, NULL},
    {"within", conf_duration, offsetof(rl_penalty_t, within_ms), 1, NULL, NULL,
     NULL},
    {"block", conf_duration, offsetof(rl_penalty_t, block_ms), 1, NULL, NULL,
     NULL},
    {"deny", conf_sub, 0, 0, &penalty_deny_table, NULL, NULL},
};
static const conf_table_t penalty_table = {penalty_fields,
                                           CONF_NELEM(penalty_fields), NULL};

/* "penalties": an array of up to 64 penalties with distinct names; dst is
 * the conf. */
int conf_penalties(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                   const void *arg)
{
    rl_conf_t *conf = dst;
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) > CONF_MAX_PENALTIES) {
        return conf_fail(c, path, "must be an array of at most %d penalties",
                         CONF_MAX_PENALTIES);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    conf->penalties = calloc(json_array_size(v), sizeof(*conf->penalties));
    if (conf->penalties == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_penalty_t *pen = &conf->penalties[i];

        conf->npenalties++;
        conf_path_index(sub, sizeof(sub), path, i);
        if (conf_table_defaults(c, &penalty_table, pen) != 0 ||
            conf_object(c, sub, json_array_get(v, i), &penalty_table, pen) !=
                0) {
            return -1;
        }
        for (j = 0; j < (int)i; j++) {
            if (strcmp(conf->penalties[j].name, pen->name) == 0) {
                return conf_fail(c, sub, "name \"%s\" is used by penalties[%d]",
                                 pen->name, j);
            }
        }
    }
    return 0;
}

/* Frees every penalty and the array; dst is the conf. */
void conf_free_penalties(void *dst)
{
    rl_conf_t *conf = dst;
    int i;

    for (i = 0; i < conf->npenalties; i++) {
        rl_reply_body_free(conf->penalties[i].deny_tpl);
        conf_table_free(&penalty_table, &conf->penalties[i]);
    }
    free(conf->penalties);
    conf->penalties = NULL;
    conf->npenalties = 0;
}

/* 1 if policies a and b have the same hash_tag field specs in order. */
static int conf_same_tag(const rl_policy_t *a, const rl_policy_t *b)
{
    int i;

    if (a->nhash_tag != b->nhash_tag) {
        return 0;
    }
    for (i = 0; i < a->nhash_tag; i++) {
        if (!rl_key_field_same(&a->key[a->hash_tag[i]],
                               &b->key[b->hash_tag[i]])) {
            return 0;
        }
    }
    return 1;
}

/* 1 if the policies are layered: more than one group, or a penalty. */
static int conf_layered(const rl_conf_t *conf)
{
    int i;

    for (i = 0; i < conf->npolicies; i++) {
        if (conf->policies[i].penalty != NULL ||
            strcmp(conf->policies[i].group, conf->policies[0].group) != 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 if penalty pen's key holds every hash_tag field of policy p. */
static int conf_penalty_tagged(const rl_penalty_t *pen, const rl_policy_t *p)
{
    int i;
    int j;

    for (i = 0; i < p->nhash_tag; i++) {
        for (j = 0; j < pen->nkey; j++) {
            if (rl_key_field_same(&pen->key[j], &p->key[p->hash_tag[i]])) {
                break;
            }
        }
        if (j == pen->nkey) {
            return 0;
        }
    }
    return 1;
}

/* The cluster rule (conf_policy.h): every key of one decision in one
 * slot, so one script decides all of it. */
int conf_layers_check(conf_ctx_t *c, const rl_conf_t *conf)
{
    char path[CONF_PATH_MAX];
    int i;

    if (!conf->store.cluster || conf->npolicies == 0 || !conf_layered(conf)) {
        return 0;
    }
    for (i = 0; i < conf->npolicies; i++) {
        const rl_policy_t *p = &conf->policies[i];

        if (p->nhash_tag == 0 || !conf_same_tag(p, &conf->policies[0])) {
            snprintf(path, sizeof(path), "policies[%d].hash_tag", i);
            return conf_fail(c, path,
                             "required with a Redis Cluster when policies "
                             "are layered (groups or penalties): every "
                             "policy must share one hash_tag");
        }
    }
    for (i = 0; i < conf->npenalties; i++) {
        if (!conf_penalty_tagged(&conf->penalties[i], &conf->policies[0])) {
            snprintf(path, sizeof(path), "penalties[%d].key", i);
            return conf_fail(c, path,
                             "must hold every field of the policies' "
                             "hash_tag with a Redis Cluster");
        }
    }
    return 0;
}
