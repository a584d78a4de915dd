#ifndef RL_CONF_AUTH_H
#define RL_CONF_AUTH_H

#include "conf_field.h"

/* The "auth" and "tenants" sections (conf_auth.c), for the top level. */

/* "auth": its table; dst is conf->auth. */
extern const conf_table_t conf_auth_table;

/* "tenants": dst is the conf. */
conf_parse_fn conf_tenants;

/* Frees the conf's tenants; dst is the conf. */
conf_free_fn conf_free_tenants;

#endif
