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

#endif
