#ifndef RL_CONF_POLICY_H
#define RL_CONF_POLICY_H

#include "conf_field.h"

/* The "policies" section (conf_policy.c), for the top level. */

/* "policies": an array (may be empty) of policies; dst is the conf.
 * Needs "tenants" parsed first (verify_tenant checks them). */
conf_parse_fn conf_policies;

/* Frees the conf's policies; dst is the conf. */
conf_free_fn conf_free_policies;

#endif
