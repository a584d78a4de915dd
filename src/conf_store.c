/* The "store" section of the configuration: Redis (standalone, cluster
 * or through Sentinel) or memory, its addresses, credentials and TLS. The TLS
 * files are loaded here once, so a bad file fails the config check instead of
 * every connection. Main thread only. */
#include "conf_store.h"

#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "redis_tls.h"

#define CONF_MAX_NODES 64

static const conf_range_t range_timeout = {1, 60000};
static const conf_range_t range_db = {0, 15};
static const conf_range_t range_refresh = {100, 3600000};

static const conf_enum_item_t store_type_items[] = {
    {"redis", RL_STORE_REDIS},
    {"memory", RL_STORE_MEMORY},
};
static const conf_enum_t enum_store_type = {store_type_items,
                                            CONF_NELEM(store_type_items)};

/* ------------------------------------------------------------------------
 * Addresses
 * ---------------------------------------------------------------------- */

/* Reads a Redis "host:port" into *host and *port. Workers never resolve
 * names (a blocking call on the hot path), so the host must be numeric,
 * or localhost. */
static int conf_redis_hostport(conf_ctx_t *c, const char *path, json_t *v,
                               char **host, int *port)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (conf_hostport(c, path, v, host, port, 1) != 0) {
        return -1;
    }
    if (strcmp(*host, "localhost") != 0 &&
        inet_pton(AF_INET, *host, &a4) != 1 &&
        inet_pton(AF_INET6, *host, &a6) != 1) {
        return conf_fail(c, path,
                         "\"%s\" must be a numeric IP address or localhost",
                         json_string_value(v));
    }
    return 0;
}

/* Frees store.address's host; dst is the store section. */
static void conf_free_address(void *dst)
{
    rl_conf_store_t *st = dst;

    free(st->host);
    st->host = NULL;
}

/* "store.address": dst is the store section. */
static int conf_address(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_store_t *st = dst;

    return conf_redis_hostport(c, path, v, &st->host, &st->port);
}

/* A list of 1..64 distinct "host:port" nodes at path into a new *out
 * and *n (store.nodes, store.sentinel.nodes). */
static int conf_node_list(conf_ctx_t *c, const char *path, json_t *v,
                          rl_conf_node_t **out, int *n)
{
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > CONF_MAX_NODES) {
        return conf_fail(c, path,
                         "must be an array of 1 to %d \"host:port\" strings",
                         CONF_MAX_NODES);
    }
    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_conf_node_t *node = &(*out)[i];

        conf_path_index(sub, sizeof(sub), path, i);
        (*n)++;
        if (conf_redis_hostport(c, sub, json_array_get(v, i), &node->host,
                                &node->port) != 0) {
            return -1;
        }
        for (j = 0; j < (int)i; j++) {
            if ((*out)[j].port == node->port &&
                strcmp((*out)[j].host, node->host) == 0) {
                return conf_fail(c, sub, "\"%s\" repeats nodes[%d]",
                                 json_string_value(json_array_get(v, i)), j);
            }
        }
    }
    return 0;
}

/* Frees a node list of conf_node_list; safe on a partly parsed one. */
static void conf_node_list_free(rl_conf_node_t **nodes, int *n)
{
    int i;

    for (i = 0; i < *n; i++) {
        free((*nodes)[i].host);
    }
    free(*nodes);
    *nodes = NULL;
    *n = 0;
}

/* "store.nodes": 1..64 distinct seed nodes; dst is the store section. */
static int conf_nodes(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    rl_conf_store_t *st = dst;

    return conf_node_list(c, path, v, &st->nodes, &st->nnodes);
}

/* Frees store.nodes; dst is the store section. */
static void conf_free_nodes(void *dst)
{
    rl_conf_store_t *st = dst;

    conf_node_list_free(&st->nodes, &st->nnodes);
}

/* ------------------------------------------------------------------------
 * Sentinel
 * ---------------------------------------------------------------------- */

/* "store.sentinel.nodes": the sentinels; dst is the sentinel section. */
static int conf_sentinel_nodes(conf_ctx_t *c, const char *path, json_t *v,
                               void *dst, const void *arg)
{
    rl_conf_sentinel_t *s = dst;

    return conf_node_list(c, path, v, &s->nodes, &s->nnodes);
}

/* Frees store.sentinel.nodes; dst is the sentinel section. */
static void conf_free_sentinel_nodes(void *dst)
{
    rl_conf_sentinel_t *s = dst;

    conf_node_list_free(&s->nodes, &s->nnodes);
}

static const conf_field_t sentinel_fields[] = {
    {"master", conf_ident, offsetof(rl_conf_sentinel_t, master), 1, NULL, NULL,
     conf_free_str},
    {"nodes", conf_sentinel_nodes, 0, 1, NULL, NULL, conf_free_sentinel_nodes},
    {"username", conf_string, offsetof(rl_conf_sentinel_t, username), 0, NULL,
     NULL, conf_free_str},
    {"password", conf_string, offsetof(rl_conf_sentinel_t, password), 0, NULL,
     NULL, conf_free_secret},
};

/* "store.sentinel" as a whole (base is the rl_conf_sentinel_t): a
 * username needs a password, as for store.username. */
static int conf_sentinel_check(conf_ctx_t *c, const char *path, json_t *v,
                               void *base)
{
    rl_conf_sentinel_t *s = base;
    char sub[CONF_PATH_MAX];

    if (s->username != NULL && s->password == NULL) {
        conf_path_field(sub, sizeof(sub), path, "username");
        return conf_fail(c, sub, "needs store.sentinel.password");
    }
    return 0;
}

static const conf_table_t sentinel_table = {
    sentinel_fields, CONF_NELEM(sentinel_fields), conf_sentinel_check};
static const conf_alloc_t sentinel_alloc = {&sentinel_table,
                                            sizeof(rl_conf_sentinel_t)};

/* ------------------------------------------------------------------------
 * TLS to Redis
 * ---------------------------------------------------------------------- */

static const conf_field_t tls_fields[] = {
    {"ca_file", conf_file, offsetof(rl_conf_tls_t, ca_file), 0, NULL, NULL,
     conf_free_str},
    {"cert_file", conf_file, offsetof(rl_conf_tls_t, cert_file), 0, NULL, NULL,
     conf_free_str},
    {"key_file", conf_file, offsetof(rl_conf_tls_t, key_file), 0, NULL, NULL,
     conf_free_str},
    {"server_name", conf_string, offsetof(rl_conf_tls_t, server_name), 0, NULL,
     NULL, conf_free_str},
};
/* "store.tls" as a whole (base is the rl_conf_tls_t): the certificate
 * and key come as a pair, and are loaded once here so that a bad file
 * fails the config check instead of every connection. */
static int conf_tls_check(conf_ctx_t *c, const char *path, json_t *v,
                          void *base)
{
    rl_conf_tls_t *t = base;
    char sub[CONF_PATH_MAX];
    char terr[384];
    const char *field;
    SSL_CTX *ctx;

    if ((t->cert_file == NULL) != (t->key_file == NULL)) {
        conf_path_field(sub, sizeof(sub), path,
                        t->cert_file == NULL ? "key_file" : "cert_file");
        return conf_fail(c, sub, "needs store.tls.%s",
                         t->cert_file == NULL ? "cert_file" : "key_file");
    }
    if (t->server_name != NULL && t->server_name[0] == '\0') {
        conf_path_field(sub, sizeof(sub), path, "server_name");
        return conf_fail(c, sub, "must not be empty");
    }
    ctx = rl_redis_tls_ctx_new(t, &field, terr, sizeof(terr));
    if (ctx == NULL) {
        if (field != NULL) {
            conf_path_field(sub, sizeof(sub), path, field);
        }
        return conf_fail(c, field != NULL ? sub : path, "%s", terr);
    }
    SSL_CTX_free(ctx);
    return 0;
}

static const conf_table_t tls_table = {tls_fields, CONF_NELEM(tls_fields),
                                       conf_tls_check};
static const conf_alloc_t tls_alloc = {&tls_table, sizeof(rl_conf_tls_t)};

static const conf_field_t store_fields[] = {
    {"type", conf_enum, offsetof(rl_conf_store_t, type), 0, &enum_store_type,
     "\"redis\"", NULL},
    {"address", conf_address, 0, 0, NULL, "\"127.0.0.1:6379\"",
     conf_free_address},
    {"timeout_ms", conf_int, offsetof(rl_conf_store_t, timeout_ms), 0,
     &range_timeout, "50", NULL},
    {"prefix", conf_ident, offsetof(rl_conf_store_t, prefix), 0, NULL, "\"rl\"",
     conf_free_str},
    {"username", conf_string, offsetof(rl_conf_store_t, username), 0, NULL,
     NULL, conf_free_str},
    {"password", conf_string, offsetof(rl_conf_store_t, password), 0, NULL,
     NULL, conf_free_secret},
    {"db", conf_int, offsetof(rl_conf_store_t, db), 0, &range_db, NULL, NULL},
    {"cluster", conf_bool, offsetof(rl_conf_store_t, cluster), 0, NULL, NULL,
     NULL},
    {"nodes", conf_nodes, 0, 0, NULL, NULL, conf_free_nodes},
    {"refresh_interval_ms", conf_int,
     offsetof(rl_conf_store_t, refresh_interval_ms), 0, &range_refresh, "5000",
     NULL},
    {"tls", conf_sub_new, offsetof(rl_conf_store_t, tls), 0, &tls_alloc, NULL,
     NULL},
    {"sentinel", conf_sub_new, offsetof(rl_conf_store_t, sentinel), 0,
     &sentinel_alloc, NULL, NULL},
};

/* Store fields that only make sense in one mode: a field given in the
 * other mode is an error, not silently ignored. */
static const struct {
    const char *field;
    int cluster; /* the mode the field belongs to */
    const char *problem;
} store_mode_fields[] = {
    {"nodes", 1, "only applies with \"cluster\": true"},
    {"refresh_interval_ms", 1, "only applies with \"cluster\": true"},
    {"address", 0,
     "not used with \"cluster\": true; list the seed nodes in store.nodes"},
};

/* The checks across "store" fields (base is conf->store): a username
 * needs a password (AUTH takes both or the password alone); a cluster
 * needs seed nodes and db 0; mode-only fields stay in their mode; a
 * sentinel is neither a cluster nor given an address. */
static int conf_store_check(conf_ctx_t *c, const char *path, json_t *v,
                            void *base)
{
    rl_conf_store_t *st = base;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (st->username != NULL && st->password == NULL) {
        conf_path_field(sub, sizeof(sub), path, "username");
        return conf_fail(c, sub, "needs store.password");
    }
    for (i = 0; i < CONF_NELEM(store_mode_fields); i++) {
        if (store_mode_fields[i].cluster != st->cluster &&
            json_object_get(v, store_mode_fields[i].field) != NULL) {
            conf_path_field(sub, sizeof(sub), path, store_mode_fields[i].field);
            return conf_fail(c, sub, "%s", store_mode_fields[i].problem);
        }
    }
    if (st->sentinel != NULL && st->cluster) {
        conf_path_field(sub, sizeof(sub), path, "sentinel");
        return conf_fail(c, sub, "cannot be combined with \"cluster\": true");
    }
    if (st->sentinel != NULL && json_object_get(v, "address") != NULL) {
        conf_path_field(sub, sizeof(sub), path, "address");
        return conf_fail(c, sub,
                         "not used with store.sentinel (the sentinels name "
                         "the master)");
    }
    if (st->cluster && st->nnodes == 0) {
        conf_path_field(sub, sizeof(sub), path, "nodes");
        return conf_fail(c, sub, "is required with \"cluster\": true");
    }
    if (st->cluster && st->db != 0) {
        conf_path_field(sub, sizeof(sub), path, "db");
        return conf_fail(
            c, sub,
            "must be 0 with \"cluster\": true (a cluster has one database)");
    }
    return 0;
}

const conf_table_t conf_store_table = {store_fields, CONF_NELEM(store_fields),
                                       conf_store_check};
