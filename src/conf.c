/* The configuration file: JSON text -> validated, immutable rl_conf_t.
 *
 * This file holds the top level: the table of top-level fields and the
 * small sections (listen, http, tls, admin, access_log, deny_cache,
 * forward_auth), the one reader of the file, the parse and the free.
 * The driver is conf_field.c; the big sections are conf_policy.c,
 * conf_auth.c and conf_store.c. Every field's default and free function
 * sit in its descriptor, so the defaults and rl_conf_free are the same
 * tables the parse reads. Main thread only; the result is read-only
 * afterwards. */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_auth.h"
#include "conf_field.h"
#include "conf_grpc.h"
#include "conf_policy.h"
#include "conf_store.h"
#include "errors.h"
#include "reply.h"
#include "util.h"

#define CONF_HTTP_MAX 2147483647LL

static const conf_range_t range_workers = {0, 256};
static const conf_range_t range_http = {1, CONF_HTTP_MAX};
static const conf_range_t range_status = {400, 599};
static const conf_range_t range_cache_entries = {0, 1048576};

static const conf_enum_item_t log_level_items[] = {
    {"debug", 0},
    {"info", 1},
    {"warn", 2},
    {"error", 3},
};
static const conf_enum_t enum_log_level = {log_level_items,
                                           CONF_NELEM(log_level_items)};

static const conf_enum_item_t tls_version_items[] = {
    {"1.2", 12},
    {"1.3", 13},
};
static const conf_enum_t enum_tls_version = {tls_version_items,
                                             CONF_NELEM(tls_version_items)};

/* ------------------------------------------------------------------------
 * Small sections
 * ---------------------------------------------------------------------- */

/* "listen": dst is the conf. Port 0 asks the kernel for a free port. */
static int conf_listen(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                       const void *arg)
{
    rl_conf_t *conf = dst;

    return conf_hostport(c, path, v, &conf->listen_host, &conf->listen_port, 0);
}

/* Frees the listen host; dst is the conf. */
static void conf_free_listen(void *dst)
{
    rl_conf_t *conf = dst;

    free(conf->listen_host);
    conf->listen_host = NULL;
}

static const conf_field_t http_fields[] = {
    {"max_body_bytes", conf_int64, offsetof(rl_conf_http_t, max_body_bytes), 0,
     &range_http, "10485760", NULL},
    {"max_header_bytes", conf_int64, offsetof(rl_conf_http_t, max_header_bytes),
     0, &range_http, "65536", NULL},
    {"read_timeout_ms", conf_int64, offsetof(rl_conf_http_t, read_timeout_ms),
     0, &range_http, "10000", NULL},
    {"idle_timeout_ms", conf_int64, offsetof(rl_conf_http_t, idle_timeout_ms),
     0, &range_http, "60000", NULL},
    {"max_connections", conf_int64, offsetof(rl_conf_http_t, max_connections),
     0, &range_http, "10000", NULL},
    {"max_inflight_decisions", conf_int64,
     offsetof(rl_conf_http_t, max_inflight_decisions), 0, &range_http, "2048",
     NULL},
};
static const conf_table_t http_table = {http_fields, CONF_NELEM(http_fields),
                                        NULL};

/* "tls": TLS on the listener. The files are loaded when the service
 * starts (and by --check-config), not here. */
static const conf_field_t listen_tls_fields[] = {
    {"cert_file", conf_string, offsetof(rl_conf_listen_tls_t, cert_file), 1,
     NULL, NULL, conf_free_str},
    {"key_file", conf_string, offsetof(rl_conf_listen_tls_t, key_file), 1, NULL,
     NULL, conf_free_str},
    {"min_version", conf_enum, offsetof(rl_conf_listen_tls_t, min_version), 0,
     &enum_tls_version, "\"1.2\"", NULL},
};
const conf_table_t conf_listen_tls_table = {
    listen_tls_fields, CONF_NELEM(listen_tls_fields), NULL};

/* "admin" as a whole (base is conf->admin): enabled admin endpoints need
 * a key. */
static int conf_admin_check(conf_ctx_t *c, const char *path, json_t *v,
                            void *base)
{
    rl_conf_admin_t *a = base;
    char sub[CONF_PATH_MAX];

    if (a->enabled && a->key_sha256 == NULL) {
        conf_path_field(sub, sizeof(sub), path, "key_sha256");
        return conf_fail(c, sub, "is required when admin.enabled is true");
    }
    return 0;
}

static const conf_field_t admin_fields[] = {
    {"enabled", conf_bool, offsetof(rl_conf_admin_t, enabled), 0, NULL, NULL,
     NULL},
    {"key_sha256", conf_sha256, offsetof(rl_conf_admin_t, key_sha256), 0, NULL,
     NULL, conf_free_str},
};
static const conf_table_t admin_table = {admin_fields, CONF_NELEM(admin_fields),
                                         conf_admin_check};

/* "access_log", "deny_cache" and "top_keys": they fill conf->ops. */
static const conf_field_t access_log_fields[] = {
    {"sample", conf_fraction, offsetof(rl_conf_ops_t, access_log_sample), 0,
     NULL, NULL, NULL},
};
static const conf_table_t access_log_table = {
    access_log_fields, CONF_NELEM(access_log_fields), NULL};

static const conf_field_t deny_cache_fields[] = {
    {"entries", conf_int64, offsetof(rl_conf_ops_t, deny_cache_entries), 0,
     &range_cache_entries, "16384", NULL},
    {"max_ttl", conf_duration, offsetof(rl_conf_ops_t, deny_cache_max_ttl_ms),
     0, NULL, "\"10s\"", NULL},
};
static const conf_table_t deny_cache_table = {
    deny_cache_fields, CONF_NELEM(deny_cache_fields), NULL};

/* "top_keys": the top limited keys summary (topkeys.h) on or off. */
static const conf_field_t top_keys_fields[] = {
    {"enabled", conf_bool, offsetof(rl_conf_ops_t, top_keys), 0, NULL, "true",
     NULL},
};
static const conf_table_t top_keys_table = {top_keys_fields,
                                            CONF_NELEM(top_keys_fields), NULL};

/* A header name, or JSON null for "not from a header" (*dst NULL). */
static int conf_header_or_null(conf_ctx_t *c, const char *path, json_t *v,
                               void *dst, const void *arg)
{
    if (json_is_null(v)) {
        conf_free_str(dst);
        return 0;
    }
    return conf_header_name(c, path, v, dst, arg);
}

static const conf_range_t range_hops = {0, RL_CONF_FORWARD_MAX_HOPS};

static const conf_field_t client_ip_fields[] = {
    {"header", conf_header_name, offsetof(rl_conf_client_ip_t, header), 1, NULL,
     NULL, conf_free_str},
    {"trusted_hops", conf_int, offsetof(rl_conf_client_ip_t, trusted_hops), 0,
     &range_hops, NULL, NULL},
};
static const conf_table_t client_ip_table = {
    client_ip_fields, CONF_NELEM(client_ip_fields), NULL};

/* "forward_auth.client_ip": "peer", or {"header", "trusted_hops"}; dst
 * is the rl_conf_client_ip_t, replaced whole. */
static int conf_client_ip(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                          const void *arg)
{
    rl_conf_client_ip_t *ip = dst;

    conf_table_free(&client_ip_table, ip);
    memset(ip, 0, sizeof(*ip));
    if (json_is_string(v) && strcmp(json_string_value(v), "peer") == 0) {
        return 0;
    }
    if (!json_is_object(v)) {
        return conf_fail(c, path,
                         "must be \"peer\" or {\"header\": ..., "
                         "\"trusted_hops\": ...}");
    }
    return conf_object(c, path, v, &client_ip_table, ip);
}

/* Frees forward_auth.client_ip; dst is the rl_conf_client_ip_t. */
static void conf_free_client_ip(void *dst)
{
    conf_table_free(&client_ip_table, dst);
}

static const conf_field_t forward_auth_fields[] = {
    {"deny_status", conf_int, offsetof(rl_conf_forward_auth_t, deny_status), 0,
     &range_status, NULL, NULL},
    {"tenant_header", conf_header_name,
     offsetof(rl_conf_forward_auth_t, tenant_header), 0, NULL,
     "\"x-tenant-id\"", conf_free_str},
    {"user_header", conf_header_name,
     offsetof(rl_conf_forward_auth_t, user_header), 0, NULL, "\"x-user-id\"",
     conf_free_str},
    {"uri_header", conf_header_or_null,
     offsetof(rl_conf_forward_auth_t, uri_header), 0, NULL,
     "\"x-original-uri\"", conf_free_str},
    {"method_header", conf_header_or_null,
     offsetof(rl_conf_forward_auth_t, method_header), 0, NULL,
     "\"x-original-method\"", conf_free_str},
    {"client_ip", conf_client_ip, offsetof(rl_conf_forward_auth_t, client_ip),
     0, NULL, "{\"header\": \"x-forwarded-for\", \"trusted_hops\": 1}",
     conf_free_client_ip},
};
static const conf_table_t forward_auth_table = {
    forward_auth_fields, CONF_NELEM(forward_auth_fields), NULL};

/* "paths": normalisation, case and unmatched requests (path.h). */
static const conf_enum_item_t unmatched_items[] = {
    {"allow", 0},
    {"deny", 1},
};
static const conf_enum_t enum_unmatched = {unmatched_items,
                                           CONF_NELEM(unmatched_items)};

static const conf_field_t paths_deny_fields[] = {
    {"status", conf_int, offsetof(rl_conf_paths_t, deny_status), 0,
     &range_status, "403", NULL},
    {"body", conf_json, offsetof(rl_conf_paths_t, deny_body), 0, NULL, NULL,
     conf_free_json},
};
static const conf_table_t paths_deny_table = {
    paths_deny_fields, CONF_NELEM(paths_deny_fields), NULL};

/* "paths" as a whole: without a deny.body, the UNKNOWN_POLICY error's
 * message and code (errors.h) are the body of an unmatched denial. */
static int conf_paths_check(conf_ctx_t *c, const char *path, json_t *v,
                            void *base)
{
    rl_conf_paths_t *pc = base;
    char sub[CONF_PATH_MAX];

    if (pc->deny_body != NULL) {
        if (!conf_body_uses_retry(pc->deny_body)) {
            return conf_body_compile(c, path, pc->deny_body, &pc->deny_tpl);
        }
        conf_path_field(sub, sizeof(sub), path, "deny.body");
        return conf_fail(c, sub,
                         "an unmatched path is denied for good: there is no "
                         "retry time for {retry_after} or {retry_after_human}");
    }
    pc->deny_body = json_pack("{s:s, s:s}", "error",
                              rl_error_message(RL_ERR_UNKNOWN_POLICY), "code",
                              rl_error_code(RL_ERR_UNKNOWN_POLICY));
    if (pc->deny_body == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    return conf_body_compile(c, path, pc->deny_body, &pc->deny_tpl);
}

static const conf_field_t paths_fields[] = {
    {"normalize", conf_bool, offsetof(rl_conf_paths_t, normalize), 0, NULL,
     "true", NULL},
    {"case_sensitive", conf_bool, offsetof(rl_conf_paths_t, case_sensitive), 0,
     NULL, "true", NULL},
    {"unmatched", conf_enum, offsetof(rl_conf_paths_t, unmatched_deny), 0,
     &enum_unmatched, "\"allow\"", NULL},
    {"deny", conf_sub, 0, 0, &paths_deny_table, NULL, NULL},
};
static const conf_table_t paths_table = {paths_fields, CONF_NELEM(paths_fields),
                                         conf_paths_check};

/* ------------------------------------------------------------------------
 * Top level
 * ---------------------------------------------------------------------- */

static const conf_field_t top_fields[] = {
    {"listen", conf_listen, 0, 0, NULL, "\"127.0.0.1:8080\"", conf_free_listen},
    {"workers", conf_int, offsetof(rl_conf_t, workers), 0, &range_workers, NULL,
     NULL},
    {"log_level", conf_enum_str, offsetof(rl_conf_t, log_level), 0,
     &enum_log_level, "\"info\"", conf_free_str},
    {"http", conf_sub, offsetof(rl_conf_t, http), 0, &http_table, NULL, NULL},
    {"store", conf_sub, offsetof(rl_conf_t, store), 0, &conf_store_table, NULL,
     NULL},
    /* auth and tenants before policies: verify_tenant checks tenants. */
    {"auth", conf_sub, offsetof(rl_conf_t, auth), 0, &conf_auth_table, NULL,
     NULL},
    {"tenants", conf_tenants, 0, 0, NULL, NULL, conf_free_tenants},
    {"tls", conf_sub, offsetof(rl_conf_t, tls), 0, &conf_listen_tls_table, NULL,
     NULL},
    /* penalties before policies: a policy's "penalty" names one. */
    {"penalties", conf_penalties, 0, 0, NULL, NULL, conf_free_penalties},
    {"policies", conf_policies, 0, 1, NULL, NULL, conf_free_policies},
    {"admin", conf_sub, offsetof(rl_conf_t, admin), 0, &admin_table, NULL,
     NULL},
    {"access_log", conf_sub, offsetof(rl_conf_t, ops), 0, &access_log_table,
     NULL, NULL},
    {"deny_cache", conf_sub, offsetof(rl_conf_t, ops), 0, &deny_cache_table,
     NULL, NULL},
    {"top_keys", conf_sub, offsetof(rl_conf_t, ops), 0, &top_keys_table, NULL,
     NULL},
    {"forward_auth", conf_sub, offsetof(rl_conf_t, forward_auth), 0,
     &forward_auth_table, NULL, NULL},
    {"paths", conf_sub, offsetof(rl_conf_t, paths), 0, &paths_table, NULL,
     NULL},
    {"grpc", conf_sub_new, offsetof(rl_conf_t, grpc), 0, &conf_grpc_alloc, NULL,
     NULL},
};
/* Checks across sections once all are parsed. */
static int conf_top_check(conf_ctx_t *c, const char *path, json_t *v,
                          void *base)
{
    return conf_layers_check(c, base);
}

static const conf_table_t top_table = {top_fields, CONF_NELEM(top_fields),
                                       conf_top_check};

/* ------------------------------------------------------------------------
 * Public API
 * ---------------------------------------------------------------------- */

/* Parses text into a new conf (the caller's, rl_conf_free) and, when
 * json is not NULL, hands over the parsed tree too (the caller's,
 * json_decref). NULL with err set on any error. */
static rl_conf_t *conf_parse(const char *text, size_t len, json_t **json,
                             char *err, size_t errlen)
{
    conf_ctx_t c;
    json_error_t jerr;
    json_t *root = NULL;
    rl_conf_t *conf = NULL;
    char digest[65];

    if (errlen > 0) {
        err[0] = '\0';
    }
    c.err = err;
    c.errlen = errlen;
    c.cur_policy = 0;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* The parser quotes the text near the error ("near 'abc'"), which
         * may be part of a secret: only the position is reported. */
        char *near = strstr(jerr.text, " near '");
        if (near != NULL) {
            *near = '\0';
        }
        snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        goto fail;
    }
    conf = calloc(1, sizeof(*conf));
    if (conf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c.conf = conf;
    if (conf_table_defaults(&c, &top_table, conf) != 0) {
        goto fail;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "top level: must be an object");
        goto fail;
    }
    if (conf_object(&c, "", root, &top_table, conf) != 0) {
        goto fail;
    }
    rl_sha256_hex(text, len, digest);
    memcpy(conf->hash, digest, 16);
    conf->hash[16] = '\0';
    if (json != NULL) {
        *json = root;
    } else {
        json_decref(root);
    }
    return conf;

fail:
    json_decref(root);
    rl_conf_free(conf);
    return NULL;
}

/* Parses text; the returned conf is the caller's (rl_conf_free). */
rl_conf_t *rl_conf_parse(const char *text, size_t len, char *err, size_t errlen)
{
    return conf_parse(text, len, NULL, err, errlen);
}

/* Reads the whole file at path into a new buffer (*len bytes, *cap
 * allocated). NULL with err set on any error (nothing left to free). */
static char *conf_read_file(const char *path, size_t *len, size_t *cap,
                            char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    *len = 0;
    *cap = 0;
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (*len == *cap) {
            size_t ncap = *cap == 0 ? 65536 : *cap * 2;
            char *nb = malloc(ncap);

            if (nb == NULL) {
                snprintf(err, errlen, "cannot read %s: %s", path,
                         strerror(ENOMEM));
                goto fail;
            }
            /* Grown by hand, not realloc, so no unwiped copy is left. */
            if (buf != NULL) {
                memcpy(nb, buf, *len);
                rl_wipe(buf, *cap);
                free(buf);
            }
            buf = nb;
            *cap = ncap;
        }
        n = fread(buf + *len, 1, *cap - *len, f);
        *len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    return buf;

fail:
    fclose(f);
    if (buf != NULL) {
        rl_wipe(buf, *cap);
    }
    free(buf);
    return NULL;
}

/* The one reader of the config file, for start-up and reload: reads it,
 * parses it, and wipes the text (which may hold secrets) on every path. */
rl_conf_t *rl_conf_read(const char *path, json_t **json, char *err,
                        size_t errlen)
{
    size_t len;
    size_t cap;
    char *text;
    rl_conf_t *conf;

    if (json != NULL) {
        *json = NULL;
    }
    text = conf_read_file(path, &len, &cap, err, errlen);
    if (text == NULL) {
        return NULL;
    }
    conf = conf_parse(text, len, json, err, errlen);
    rl_wipe(text, cap);
    free(text);
    return conf;
}

/* Reads the whole file at path, then rl_conf_parse. */
rl_conf_t *rl_conf_load(const char *path, char *err, size_t errlen)
{
    return rl_conf_read(path, NULL, err, errlen);
}

/* Frees conf and everything it owns (secrets wiped); NULL is fine. */
void rl_conf_free(rl_conf_t *conf)
{
    if (conf == NULL) {
        return;
    }
    rl_reply_body_free(conf->paths.deny_tpl);
    conf_table_free(&top_table, conf);
    free(conf);
}

/* The policy called name, borrowed from conf; NULL if none. */
const rl_policy_t *rl_conf_policy(const rl_conf_t *conf, const char *name)
{
    return rl_policy_by_name(conf->policies, conf->npolicies, name);
}
