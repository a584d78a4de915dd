#ifndef RL_CONF_POLICY_H
#define RL_CONF_POLICY_H

#include "conf_field.h"

/* The "policies" section (conf_policy.c), for the top level. */

/* "policies": an array (may be empty) of policies; dst is the conf.
 * Needs "tenants" parsed first (verify_tenant checks them). */
conf_parse_fn conf_policies;

/* Frees the conf's policies; dst is the conf. */
conf_free_fn conf_free_policies;

/* Parses an array of 1..RL_MAX_LIMITS limits at path into a new *out
 * (caller frees) and *n; suffixes get sprefix in front ("" or "t"). The
 * one limits parser: policies, test rules and overrides. 0 or -1. */
int conf_limits(conf_ctx_t *c, const char *path, json_t *v, const char *sprefix,
                rl_limit_t **out, int *n);

/* "overrides" of a policy (conf_override.c); dst is the policy, whose
 * "key" is parsed first. */
conf_parse_fn conf_overrides;

/* Frees a policy's overrides; dst is the policy. */
conf_free_fn conf_free_overrides;
/* Parses one key spec s found at path into f (strings owned by f),
 * checking path.NAME against policy p's pattern; p may be NULL for a spec
 * that is no path.NAME. 0 or -1. */
int conf_key_field(conf_ctx_t *c, const char *path, const char *s,
                   const rl_policy_t *p, rl_key_field_t *f);

/* Parses the non-empty array v of key specs at path into a new *out
 * (*n fields; free with conf_key_list_free, also after an error),
 * checking path.NAME against p's pattern (p may be NULL when no spec is
 * a path.NAME) and refusing repeats. 0 or -1. */
int conf_key_list(conf_ctx_t *c, const char *path, json_t *v,
                  const rl_policy_t *p, rl_key_field_t **out, int *n);

/* Frees the *n key fields at *key and the array; both are reset. */
void conf_key_list_free(rl_key_field_t **key, int *n);

/* "penalties" (conf_penalty.c): an array of penalties; dst is the conf.
 * Parsed before "policies", which name them. */
conf_parse_fn conf_penalties;

/* Frees the conf's penalties; dst is the conf. */
conf_free_fn conf_free_penalties;

/* The load-time rule of layered policies on a Redis Cluster
 * (conf_penalty.c): with more than one group or any penalty, every
 * policy sets the same hash_tag and every penalty's key holds its
 * fields. 0, or -1 with the error at the JSON path. */
int conf_layers_check(conf_ctx_t *c, const rl_conf_t *conf);

#endif
