#ifndef RL_CONF_GRPC_H
#define RL_CONF_GRPC_H

#include "conf_field.h"

/* The "grpc" section (conf_grpc.c): the allocation of rl_conf_grpc_t
 * (conf.h), for the top level's conf_sub_new row. */
extern const conf_alloc_t conf_grpc_alloc;

/* The HTTP listener's "tls" table (conf.c), shared by "grpc.tls". */
extern const conf_table_t conf_listen_tls_table;

#endif
