#ifndef RL_CONF_H
#define RL_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "limit.h"
#include "policy.h"

/* The configuration: JSON file -> validated, immutable struct. Built once
 * by rl_conf_load/rl_conf_parse on the main thread, then only read. Every
 * error names its JSON path, e.g.
 *   policies[2].limits[0].per: "5x" is not a duration                     */

typedef enum { RL_STORE_REDIS = 0, RL_STORE_MEMORY } rl_store_type_t;

/* "store.tls": TLS to Redis (standalone and cluster). Absent: plain TCP. */
typedef struct rl_conf_tls {
    char *ca_file;   /* NULL: the system's default CAs */
    char *cert_file; /* client certificate, only with key_file */
    char *key_file;
    char *server_name; /* SNI and the name the certificate must carry;
                        * NULL: the node's IP address */
} rl_conf_tls_t;

/* A seed node of "store.nodes". */
typedef struct rl_conf_node {
    char *host; /* numeric IP address or "localhost" */
    int port;
} rl_conf_node_t;

/* "store.sentinel": Redis Sentinel names the master. Absent: the
 * standalone store.address or the cluster. */
typedef struct rl_conf_sentinel {
    char *master;          /* the master's name the sentinels monitor */
    rl_conf_node_t *nodes; /* the sentinels (1..64) */
    int nnodes;
    char *username; /* the sentinels' own AUTH; optional */
    char *password; /* optional, never logged */
} rl_conf_sentinel_t;

typedef struct rl_conf_store {
    rl_store_type_t type;
    char *host; /* from "address": "host:port" */
    int port;
    int timeout_ms;        /* default 50 */
    char *prefix;          /* default "rl" */
    char *username;        /* optional */
    char *password;        /* optional, never logged */
    int db;                /* SELECT n, default 0 */
    int cluster;           /* "cluster": true selects store_cluster */
    rl_conf_node_t *nodes; /* cluster seed nodes (1..64) */
    int nnodes;
    int refresh_interval_ms;      /* periodic topology refresh, default 5000 */
    rl_conf_tls_t *tls;           /* NULL: no TLS */
    rl_conf_sentinel_t *sentinel; /* NULL: no Sentinel */
} rl_conf_store_t;

typedef struct rl_conf_http {
    int64_t max_body_bytes;         /* default 10485760 */
    int64_t max_header_bytes;       /* default 65536 */
    int64_t read_timeout_ms;        /* default 10000 */
    int64_t idle_timeout_ms;        /* default 60000 */
    int64_t max_connections;        /* per worker, default 10000 */
    int64_t max_inflight_decisions; /* per worker, default 2048 */
} rl_conf_http_t;

/* A caller of the API or a tenant: who it is and how it proves it.
 * secret (hmac) comes from "secret", "secret_file" or "secret_env"; it
 * is never logged, and is wiped when the conf is freed. key_sha256
 * (bearer) is the lower-case hex SHA-256 of the caller's key. */
typedef struct rl_principal {
    char *id;
    unsigned char *secret; /* hmac only, secret_len bytes, NULL otherwise */
    size_t secret_len;
    char key_sha256[65]; /* bearer only, "" otherwise */
    int suspended;       /* "status": "suspended" */
} rl_principal_t;

typedef enum { RL_AUTH_NONE = 0, RL_AUTH_HMAC, RL_AUTH_BEARER } rl_auth_mode_t;

typedef struct rl_conf_auth {
    rl_auth_mode_t mode; /* default none */
    rl_principal_t *callers;
    int ncallers;
    int64_t max_clock_skew_s; /* default 300; also for tenant signatures */
    int64_t max_failures; /* failed authentications per source address, default
                             10 */
    int64_t failure_window_ms; /* ... per this window, default 60000 */
    char **protect_paths;      /* open routes that need auth too ("/metrics") */
    int nprotect;
} rl_conf_auth_t;

/* TLS on the HTTP listener (rl_conf_tls_t is TLS to Redis). */
typedef struct rl_conf_listen_tls {
    char *cert_file; /* NULL: plain HTTP */
    char *key_file;
    int min_version; /* 12 or 13, default 12 */
} rl_conf_listen_tls_t;
/* "grpc": Envoy's rate-limit service over gRPC (conf_grpc.c). */
typedef struct rl_conf_grpc {
    char *listen_host; /* from "listen": "host:port" */
    int listen_port;
    int64_t max_message_bytes; /* default 1 MiB */
    rl_conf_listen_tls_t tls;  /* cert_file NULL: cleartext HTTP/2 */
    int descriptor_limits;     /* honour a descriptor's own "limit" */
    int store_unavailable;     /* "store_failure": "unavailable" (1) or
                                * "failure_mode" (0) */
    int64_t max_connections;   /* per worker, default 10000 */
    int64_t idle_timeout_ms;   /* default 60000: nothing received and no
                                * call waiting on its answer this long (a
                                * TLS handshake included) ends the
                                * connection */
    int64_t read_timeout_ms;   /* default 10000: a request not complete
                                * this long after its first HEADERS is
                                * answered DEADLINE_EXCEEDED and reset */
} rl_conf_grpc_t;

/* "admin": the admin endpoints (/v1/admin/reset, /v1/policies). */
typedef struct rl_conf_admin {
    int enabled;      /* default 0: the endpoints answer 404 */
    char *key_sha256; /* 64 lower-case hex digits: SHA-256 of the bearer key */
} rl_conf_admin_t;

/* "access_log", "deny_cache" and "top_keys" (see docs/operations.md). */
typedef struct rl_conf_ops {
    double access_log_sample;      /* 0..1, default 0: no access log */
    int64_t deny_cache_entries;    /* per worker, default 16384; 0 = off */
    int64_t deny_cache_max_ttl_ms; /* default 10000 */
    int top_keys;                  /* "top_keys.enabled", default 1 */
} rl_conf_ops_t;
/* "forward_auth": how /v1/authorize reads and answers a request. */
/* At most this many X-Forwarded-For entries (all its lines joined) are
 * read; a request with more is refused. */
#define RL_CONF_FORWARD_MAX_HOPS 32

/* "forward_auth.client_ip": where the client address comes from. */
typedef struct rl_conf_client_ip {
    char *header;     /* lower-case; NULL = the TCP peer ("peer") */
    int trusted_hops; /* 0 = the header whole; N = the Nth entry from the
                       * right of the comma-separated list */
} rl_conf_client_ip_t;

typedef struct rl_conf_forward_auth {
    int deny_status;     /* 0 = the policy's deny.status */
    char *tenant_header; /* lower-case, default "x-tenant-id" */
    char *user_header;   /* lower-case, default "x-user-id" */
    char *uri_header;    /* lower-case, default "x-original-uri"; NULL =
                          * the path below /v1/authorize (Envoy) */
    char *method_header; /* lower-case, default "x-original-method"; NULL =
                          * the request's own method (Envoy) */
    rl_conf_client_ip_t client_ip; /* default X-Forwarded-For, 1 hop */
} rl_conf_forward_auth_t;

/* "paths": how request paths are normalised and matched (path.h,
 * docs/security.md). */
typedef struct rl_conf_paths {
    int normalize;      /* default 1 */
    int case_sensitive; /* default 1; 0: literal segments match any case */
    int unmatched_deny; /* "unmatched": "deny" (1) / "allow" (0, default) */
    int deny_status;    /* "deny.status" of an unmatched request, 403 */
    json_t *deny_body;  /* owned; default {"error", "code"} of
                         * UNKNOWN_POLICY (errors.h) */
    struct rl_body_tpl *deny_tpl; /* owned: deny_body compiled at load */
} rl_conf_paths_t;

typedef struct rl_conf {
    char *listen_host; /* from "listen": "host:port" */
    int listen_port;   /* 0 = pick a free port */
    int workers;       /* 0 = online cores */
    char *log_level;   /* "info" default */
    rl_conf_http_t http;
    rl_conf_store_t store;
    rl_policy_t *policies;
    int npolicies;
    /* the descriptor policies indexed for gRPC lookups (policy_desc.c);
     * owned, built and freed with policies; NULL when there are none */
    rl_policy_desc_index_t *desc_index;
    rl_conf_auth_t auth;
    rl_principal_t *tenants; /* for policies with "verify_tenant" */
    int ntenants;
    rl_conf_listen_tls_t tls;
    char hash[17]; /* first 16 hex digits of SHA-256 of the file */
    rl_conf_admin_t admin;
    rl_conf_ops_t ops;
    uint64_t
        generation; /* 1 at start, +1 per reload (reload.c); 0 if never live */
    rl_conf_forward_auth_t forward_auth;
    rl_penalty_t *penalties; /* "penalties", named by policies' "penalty" */
    int npenalties;
    rl_conf_paths_t paths;
    rl_conf_grpc_t *grpc; /* "grpc"; NULL: no gRPC listener */
} rl_conf_t;

/* Parses and validates a config from JSON text. Returns a new conf the
 * caller frees with rl_conf_free, or NULL with err filled ("path: problem"). */
rl_conf_t *rl_conf_parse(const char *text, size_t len, char *err,
                         size_t errlen);

/* The one reader of a config file, used by start-up and reload: reads
 * FILE, parses it like rl_conf_parse, and wipes the text (it may hold
 * secrets) before freeing it, on every path. Returns the conf (caller's)
 * and, when json is not NULL, the parsed file in *json (caller's,
 * json_decref) for later comparisons. NULL with err set on any error
 * (*json NULL). */
rl_conf_t *rl_conf_read(const char *path, json_t **json, char *err,
                        size_t errlen);

/* rl_conf_read without the JSON. Same ownership. */
rl_conf_t *rl_conf_load(const char *path, char *err, size_t errlen);

/* Frees conf and everything it owns, secrets wiped; NULL is fine. */
void rl_conf_free(rl_conf_t *conf);

/* Writes the key suffix of a limit (see rl_limit_t.suffix) into buf:
 * prefix ("" or "t"), the algorithm's letter (algo.h), the period.
 * Returns 0, or -1 (buf "") when algo is not an algorithm or the period
 * is not positive. Pure. */
int rl_conf_limit_suffix(char *buf, size_t len, const char *prefix,
                         rl_algo_t algo, int64_t period_ms);

/* Looks up a policy by name; NULL if none. */
const rl_policy_t *rl_conf_policy(const rl_conf_t *conf, const char *name);

#endif
