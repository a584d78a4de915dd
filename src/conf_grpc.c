/* The "grpc" section of the configuration: the gRPC listener of Envoy's
 * rate-limit service (grpc.c) and how its answers are made (grpc_rls.c).
 * Parsed by the field-descriptor driver of conf_field.c; a restart-only
 * section (reload.c). */
#include "conf_grpc.h"

#include <stddef.h>
#include <stdlib.h>
#include "conf.h"

static const conf_range_t range_message = {64, 64 * 1024 * 1024};
static const conf_range_t range_conns = {1, 1000000};
static const conf_range_t range_timeout = {100, 86400000};

static const conf_enum_item_t store_failure_items[] = {
    {"failure_mode", 0},
    {"unavailable", 1},
};
static const conf_enum_t enum_store_failure = {store_failure_items,
                                               CONF_NELEM(store_failure_items)};

/* "grpc.listen": "host:port", dst is the rl_conf_grpc_t. */
static int conf_grpc_listen(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    rl_conf_grpc_t *g = dst;

    return conf_hostport(c, path, v, &g->listen_host, &g->listen_port, 1);
}

/* Frees the listen host; dst is the rl_conf_grpc_t. */
static void conf_grpc_free_listen(void *dst)
{
    rl_conf_grpc_t *g = dst;

    free(g->listen_host);
    g->listen_host = NULL;
}

static const conf_field_t grpc_fields[] = {
    {"listen", conf_grpc_listen, 0, 0, NULL, "\"127.0.0.1:8081\"",
     conf_grpc_free_listen},
    {"max_message_bytes", conf_int64,
     offsetof(rl_conf_grpc_t, max_message_bytes), 0, &range_message, "1048576",
     NULL},
    {"tls", conf_sub, offsetof(rl_conf_grpc_t, tls), 0, &conf_listen_tls_table,
     NULL, NULL},
    {"descriptor_limits", conf_bool,
     offsetof(rl_conf_grpc_t, descriptor_limits), 0, NULL, "false", NULL},
    {"store_failure", conf_enum, offsetof(rl_conf_grpc_t, store_unavailable), 0,
     &enum_store_failure, "\"failure_mode\"", NULL},
    {"max_connections", conf_int64, offsetof(rl_conf_grpc_t, max_connections),
     0, &range_conns, "10000", NULL},
    {"idle_timeout_ms", conf_int64, offsetof(rl_conf_grpc_t, idle_timeout_ms),
     0, &range_timeout, "60000", NULL},
    {"read_timeout_ms", conf_int64, offsetof(rl_conf_grpc_t, read_timeout_ms),
     0, &range_timeout, "10000", NULL},
};
static const conf_table_t grpc_table = {grpc_fields, CONF_NELEM(grpc_fields),
                                        NULL};

const conf_alloc_t conf_grpc_alloc = {&grpc_table, sizeof(rl_conf_grpc_t)};
