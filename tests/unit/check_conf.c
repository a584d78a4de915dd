/* Unit tests of conf.c: the example configuration and a full fixture
 * read back field by field, the defaults, and a table of bad configs each
 * with the exact error message a user sees. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "util.h"

#ifndef RL_SRCDIR
#define RL_SRCDIR "."
#endif

#define EXAMPLE RL_SRCDIR "/deploy/examples/ratelimitd.json"
#define FIXTURE(name) RL_SRCDIR "/tests/unit/conf/" name

/* Parses a NUL-terminated string; the conf is the caller's. */
static rl_conf_t *parse(const char *text, char *err, size_t errlen)
{
    return rl_conf_parse(text, strlen(text), err, errlen);
}

/* Loads path or fails the test with the error. */
static rl_conf_t *load_ok(const char *path)
{
    char err[512];
    rl_conf_t *conf = rl_conf_load(path, err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s: %s", path, err);
    return conf;
}

/* Asserts that limit l has the given shape. */
static void check_limit(const rl_limit_t *l, rl_algo_t algo, long long requests,
                        long long period_ms, long long burst,
                        long long block_ms, const char *suffix)
{
    ck_assert_int_eq(l->algo, algo);
    ck_assert_int_eq(l->requests, requests);
    ck_assert_int_eq(l->period_ms, period_ms);
    ck_assert_int_eq(l->burst, burst);
    ck_assert_int_eq(l->block_ms, block_ms);
    ck_assert_str_eq(l->suffix, suffix);
}

/* Asserts that p's deny body serialises to json (compact, sorted). */
static void check_body(const rl_policy_t *p, const char *json)
{
    char *s;

    ck_assert_ptr_nonnull(p->deny_body);
    s = json_dumps(p->deny_body,
                   JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    ck_assert_str_eq(s, json);
    free(s);
}

/* Asserts key field i of p. */
static void check_key(const rl_policy_t *p, int i, rl_key_kind_t kind,
                      const char *name, const char *spec)
{
    ck_assert_int_lt(i, p->nkey);
    ck_assert_int_eq(p->key[i].kind, kind);
    if (name == NULL) {
        ck_assert_ptr_null(p->key[i].name);
    } else {
        ck_assert_str_eq(p->key[i].name, name);
    }
    ck_assert_str_eq(p->key[i].spec, spec);
}

START_TEST(test_example_top_level)
{
    rl_conf_t *conf = load_ok(EXAMPLE);

    ck_assert_str_eq(conf->listen_host, "127.0.0.1");
    ck_assert_int_eq(conf->listen_port, 8080);
    ck_assert_int_eq(conf->workers, 0);
    ck_assert_str_eq(conf->log_level, "info");
    ck_assert_int_eq(conf->http.max_body_bytes, 10485760);
    ck_assert_int_eq(conf->http.read_timeout_ms, 10000);
    ck_assert_int_eq(conf->store.type, RL_STORE_REDIS);
    ck_assert_str_eq(conf->store.host, "127.0.0.1");
    ck_assert_int_eq(conf->store.port, 6379);
    ck_assert_int_eq(conf->store.timeout_ms, 50);
    ck_assert_str_eq(conf->store.prefix, "rl");
    ck_assert_int_eq(conf->npolicies, 11);
    ck_assert_int_eq((int)strlen(conf->hash), 16);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_example_platform)
{
    rl_conf_t *conf = load_ok(EXAMPLE);
    const char *body = "{\"message\":\"Too many attempts.\",\"success\":false}";
    const rl_policy_t *p;

    p = rl_conf_policy(conf, "platform-process");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->index, 0);
    ck_assert_str_eq(p->method, "POST");
    ck_assert_str_eq(p->path.text, "/platform/v2/process/{siteIdentifier}");
    ck_assert_int_eq(p->nkey, 2);
    check_key(p, 0, RL_KEY_TENANT, NULL, "tenant");
    check_key(p, 1, RL_KEY_PATH_PARAM, "siteIdentifier", "path.siteIdentifier");
    ck_assert_int_eq(p->nlimits, 1);
    check_limit(&p->limits[0], RL_ALGO_GCRA, 1, 300000, 1, 0, "g5m");
    ck_assert_int_eq(p->headers, RL_HEADERS_X_RATELIMIT_RETRY_AFTER);
    ck_assert_int_eq(p->failure_open, 1);
    ck_assert_int_eq(p->deny_status, 429);
    check_body(p, body);

    p = rl_conf_policy(conf, "platform-product-read");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->method, "GET");
    ck_assert_str_eq(
        p->path.text,
        "/product/v2/site/{siteIdentifier}/stage/{stageName}/{stageId}");
    check_limit(&p->limits[0], RL_ALGO_GCRA, 60, 60000, 60, 0, "g1m");
    check_body(p, body);

    p = rl_conf_policy(conf, "platform-other");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(p->method);
    ck_assert_str_eq(p->path.text, "/platform/*");
    ck_assert_int_eq(p->path.wildcard, 1);
    check_key(p, 1, RL_KEY_PATH, NULL, "path");
    check_limit(&p->limits[0], RL_ALGO_GCRA, 5, 1000, 5, 0, "g1s");
    ck_assert_int_eq(p->headers, RL_HEADERS_X_RATELIMIT_RETRY_AFTER);
    check_body(p, body);

    p = rl_conf_policy(conf, "product-other");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->path.text, "/product/*");
    check_limit(&p->limits[0], RL_ALGO_GCRA, 5, 1000, 5, 0, "g1s");
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_example_build_payments_events)
{
    rl_conf_t *conf = load_ok(EXAMPLE);
    const rl_policy_t *p;
    static const char *const build[] = {"build-upload", "build-distribute"};
    static const char *const build_paths[] = {"/projects/upload-file",
                                              "/projects/distribute-file"};
    int i;

    for (i = 0; i < 2; i++) {
        p = rl_conf_policy(conf, build[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_str_eq(p->method, "POST");
        ck_assert_str_eq(p->path.text, build_paths[i]);
        ck_assert_int_eq(p->nkey, 1);
        check_key(p, 0, RL_KEY_USER, NULL, "user");
        check_limit(&p->limits[0], RL_ALGO_GCRA, 1, 120000, 1, 0, "g2m");
        check_body(p, "{\"message\":\"Rate limit exceeded. Try again in "
                      "{retry_after_human}.\"}");
    }

    /* The rest of the build API: a fair-use limit that carries the penalty,
     * so a blocked user is blocked on every endpoint. */
    p = rl_conf_policy(conf, "build-other");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(p->method);
    ck_assert_str_eq(p->path.text, "/projects/*");
    ck_assert_int_eq(p->nkey, 1);
    check_key(p, 0, RL_KEY_USER, NULL, "user");
    check_limit(&p->limits[0], RL_ALGO_GCRA, 1000000, 1000, 1000000, 0, "g1s");
    ck_assert_ptr_nonnull(p->penalty);
    ck_assert_str_eq(p->penalty->name, "build-hammering");
    check_body(p, "{\"message\":\"Rate limit exceeded. Try again in "
                  "{retry_after_human}.\"}");

    p = rl_conf_policy(conf, "payments-endpoint");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(p->method);
    ck_assert_str_eq(p->path.text, "/payments/{resource}/*");
    ck_assert_int_eq(p->nkey, 2);
    check_key(p, 0, RL_KEY_TENANT, NULL, "tenant");
    check_key(p, 1, RL_KEY_PATH_PARAM, "resource", "path.resource");
    check_limit(&p->limits[0], RL_ALGO_FIXED_WINDOW, 1000, 10000, 1000, 10000,
                "f10s");
    ck_assert_ptr_nonnull(p->test);
    ck_assert_str_eq(p->test->header, "rate-limit-test");
    ck_assert_str_eq(p->test->value, "match");
    ck_assert_int_eq(p->test->nlimits, 1);
    check_limit(&p->test->limits[0], RL_ALGO_FIXED_WINDOW, 3, 10000, 3, 10000,
                "tf10s");
    check_body(
        p,
        "{\"errors\":[{\"code\":64,\"errorCode\":\"C_RATE_LIMIT_EXCEEDED_TEMP_"
        "BLOCK\","
        "\"msg\":\"Rate of requests exceeded - Temporary block implemented\","
        "\"severity\":2}]}");

    p = rl_conf_policy(conf, "events-tenant");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->method, "POST");
    ck_assert_str_eq(p->path.text, "/v1/events");
    check_key(p, 0, RL_KEY_TENANT, NULL, "tenant");
    ck_assert_int_eq(p->nlimits, 4);
    check_limit(&p->limits[0], RL_ALGO_GCRA, 1000, 1000, 1000, 0, "g1s");
    check_limit(&p->limits[1], RL_ALGO_FIXED_WINDOW, 10000, 60000, 10000, 0,
                "f1m");
    check_limit(&p->limits[2], RL_ALGO_FIXED_WINDOW, 100000, 3600000, 100000, 0,
                "f1h");
    check_limit(&p->limits[3], RL_ALGO_FIXED_WINDOW, 1000000, 86400000, 1000000,
                0, "f1d");
    ck_assert_int_eq(p->headers, RL_HEADERS_X_RATELIMIT);
    check_body(p, "{\"code\":\"RATE_001\",\"error\":\"Rate limit exceeded\"}");
    rl_conf_free(conf);
}
END_TEST

/* Key suffixes: the period in the largest unit that divides it. */
static const struct {
    const char *prefix;
    rl_algo_t algo;
    long long period_ms;
    const char *suffix;
} suffix_rows[] = {
    {"", RL_ALGO_GCRA, 3600000, "g1h"},
    {"", RL_ALGO_GCRA, 300000, "g5m"},
    {"", RL_ALGO_GCRA, 60000, "g1m"},
    {"", RL_ALGO_FIXED_WINDOW, 10000, "f10s"},
    {"", RL_ALGO_GCRA, 90000, "g90s"},
    {"", RL_ALGO_GCRA, 1500, "g1500ms"},
    {"", RL_ALGO_GCRA, 1, "g1ms"},
    {"", RL_ALGO_GCRA, 1000, "g1s"},
    {"", RL_ALGO_GCRA, 86400000, "g1d"},
    {"", RL_ALGO_GCRA, 172800000, "g2d"},
    {"", RL_ALGO_SLIDING_WINDOW, 90000000, "s25h"},
    {"", RL_ALGO_SLIDING_WINDOW, 86460000, "s1441m"},
    {"t", RL_ALGO_FIXED_WINDOW, 10000, "tf10s"},
    {"t", RL_ALGO_GCRA, 315360000000LL, "tg3650d"},
    {"t", RL_ALGO_SLIDING_WINDOW, 315359999999LL, "ts315359999999ms"},
};

START_TEST(test_limit_suffix)
{
    char buf[sizeof(((rl_limit_t *)NULL)->suffix)];

    rl_conf_limit_suffix(buf, sizeof(buf), suffix_rows[_i].prefix,
                         suffix_rows[_i].algo, suffix_rows[_i].period_ms);
    ck_assert_str_eq(buf, suffix_rows[_i].suffix);
}
END_TEST

/* The suffix that reaches a parsed limit, and periods equal in
 * milliseconds but written differently give the same suffix. */
START_TEST(test_limit_suffix_parsed)
{
    char err[512];
    rl_conf_t *conf =
        parse("{\"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/a\"},"
              " \"limits\": [{\"requests\": 1, \"per\": \"90s\"},"
              "{\"requests\": 1, \"per\": \"1500ms\"},"
              "{\"requests\": 1, \"per\": \"48h\","
              " \"algorithm\": \"fixed_window\"}]}]}",
              err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_str_eq(conf->policies[0].limits[0].suffix, "g90s");
    ck_assert_str_eq(conf->policies[0].limits[1].suffix, "g1500ms");
    ck_assert_str_eq(conf->policies[0].limits[2].suffix, "f2d");
    rl_conf_free(conf);

    conf =
        parse("{\"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/a\"},"
              " \"limits\": [{\"requests\": 1, \"per\": \"60s\"},"
              "{\"requests\": 2, \"per\": \"1m\"}]}]}",
              err, sizeof(err));
    ck_assert_ptr_null(conf);
    ck_assert_str_eq(
        err, "policies[0].limits[1]: same algorithm and period as limits[0]");
}
END_TEST

START_TEST(test_full_fixture)
{
    rl_conf_t *conf = load_ok(FIXTURE("full.json"));
    const rl_policy_t *p;

    ck_assert_str_eq(conf->listen_host, "::1");
    ck_assert_int_eq(conf->listen_port, 9090);
    ck_assert_int_eq(conf->workers, 4);
    ck_assert_str_eq(conf->log_level, "debug");
    ck_assert_int_eq(conf->http.max_body_bytes, 1048576);
    ck_assert_int_eq(conf->http.max_header_bytes, 8192);
    ck_assert_int_eq(conf->http.read_timeout_ms, 2500);
    ck_assert_int_eq(conf->http.idle_timeout_ms, 30000);
    ck_assert_int_eq(conf->http.max_connections, 500);
    ck_assert_int_eq(conf->store.type, RL_STORE_MEMORY);
    ck_assert_str_eq(conf->store.host, "10.1.2.3");
    ck_assert_int_eq(conf->store.port, 6380);
    ck_assert_int_eq(conf->store.timeout_ms, 200);
    ck_assert_str_eq(conf->store.prefix, "rl-test.v2");
    ck_assert_str_eq(conf->store.username, "limiter");
    ck_assert_str_eq(conf->store.password, "s3cret");
    ck_assert_int_eq(conf->store.db, 3);
    ck_assert_int_eq(conf->npolicies, 2);

    p = &conf->policies[0];
    ck_assert_str_eq(p->name, "every-field");
    ck_assert_int_eq(p->index, 0);
    ck_assert_str_eq(p->method, "POST");
    ck_assert_str_eq(p->path.text, "/orgs/{org}/items/{item_id}/*");
    ck_assert_int_eq(p->path.nsegs, 4);
    ck_assert_int_eq(p->path.wildcard, 1);
    ck_assert_int_eq(p->nkey, 8);
    check_key(p, 0, RL_KEY_TENANT, NULL, "tenant");
    check_key(p, 1, RL_KEY_USER, NULL, "user");
    check_key(p, 2, RL_KEY_IP, NULL, "ip");
    check_key(p, 3, RL_KEY_METHOD, NULL, "method");
    check_key(p, 4, RL_KEY_ROUTE, NULL, "route");
    check_key(p, 5, RL_KEY_PATH, NULL, "path");
    check_key(p, 6, RL_KEY_PATH_PARAM, "item_id", "path.item_id");
    check_key(p, 7, RL_KEY_HEADER, "x-api-key", "header.X-Api-Key");
    ck_assert_int_eq(p->nlimits, 3);
    check_limit(&p->limits[0], RL_ALGO_GCRA, 10, 1000, 20, 30000, "g1s");
    check_limit(&p->limits[1], RL_ALGO_SLIDING_WINDOW, 100, 60000, 100, 0,
                "s1m");
    check_limit(&p->limits[2], RL_ALGO_FIXED_WINDOW, 1000, 3600000, 1000,
                300000, "f1h");
    ck_assert_ptr_nonnull(p->test);
    ck_assert_str_eq(p->test->header, "rate-limit-test");
    ck_assert_str_eq(p->test->value, "match");
    check_limit(&p->test->limits[0], RL_ALGO_FIXED_WINDOW, 2, 10000, 2, 10000,
                "tf10s");
    ck_assert_int_eq(p->headers, RL_HEADERS_IETF);
    ck_assert_int_eq(p->failure_open, 0);
    ck_assert_int_eq(p->deny_status, 503);
    check_body(p, "\"slow down, {policy}\"");
    ck_assert_int_eq(p->shadow, 1);

    p = &conf->policies[1];
    ck_assert_str_eq(p->name, "defaults");
    ck_assert_int_eq(p->index, 1);
    ck_assert_ptr_null(p->method);
    ck_assert_int_eq(p->nkey, 0);
    check_limit(&p->limits[0], RL_ALGO_GCRA, 7, 250, 7, 0, "g250ms");
    ck_assert_ptr_null(p->test);
    ck_assert_int_eq(p->headers, RL_HEADERS_X_RATELIMIT);
    ck_assert_int_eq(p->failure_open, 1);
    ck_assert_int_eq(p->deny_status, 429);
    ck_assert_ptr_null(p->deny_body);
    ck_assert_int_eq(p->shadow, 0);
    ck_assert_ptr_eq(rl_conf_policy(conf, "defaults"), p);
    ck_assert_ptr_null(rl_conf_policy(conf, "Defaults"));
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_defaults)
{
    char err[256];
    rl_conf_t *conf = parse("{\"policies\": []}", err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_str_eq(conf->listen_host, "127.0.0.1");
    ck_assert_int_eq(conf->listen_port, 8080);
    ck_assert_int_eq(conf->workers, 0);
    ck_assert_str_eq(conf->log_level, "info");
    ck_assert_int_eq(conf->http.max_body_bytes, 10485760);
    ck_assert_int_eq(conf->http.max_header_bytes, 65536);
    ck_assert_int_eq(conf->http.read_timeout_ms, 10000);
    ck_assert_int_eq(conf->http.idle_timeout_ms, 60000);
    ck_assert_int_eq(conf->http.max_connections, 10000);
    ck_assert_int_eq(conf->store.type, RL_STORE_REDIS);
    ck_assert_str_eq(conf->store.host, "127.0.0.1");
    ck_assert_int_eq(conf->store.port, 6379);
    ck_assert_int_eq(conf->store.timeout_ms, 50);
    ck_assert_str_eq(conf->store.prefix, "rl");
    ck_assert_ptr_null(conf->store.username);
    ck_assert_ptr_null(conf->store.password);
    ck_assert_int_eq(conf->store.db, 0);
    ck_assert_int_eq(conf->npolicies, 0);
    ck_assert_ptr_null(rl_conf_policy(conf, "anything"));
    rl_conf_free(conf);
}
END_TEST

/* The "grpc" section's timeouts: their defaults, and a value given. */
START_TEST(test_grpc_timeouts)
{
    char err[256];
    rl_conf_t *conf =
        parse("{\"grpc\": {}, \"policies\": []}", err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->grpc->idle_timeout_ms, 60000);
    ck_assert_int_eq(conf->grpc->read_timeout_ms, 10000);
    rl_conf_free(conf);
    conf = parse("{\"grpc\": {\"read_timeout_ms\": 250}, \"policies\": []}",
                 err, sizeof(err));
    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->grpc->read_timeout_ms, 250);
    rl_conf_free(conf);
}
END_TEST

/* A cluster store: seeds in order (localhost kept as written), the
 * refresh interval, TLS fields; the defaults of a non-cluster store. */
START_TEST(test_store_cluster_and_tls)
{
    static const char text[] =
        "{\"store\": {\"type\": \"redis\", \"cluster\": true, "
        "\"nodes\": [\"10.0.0.1:7000\", \"[::1]:7001\", \"localhost:7002\"], "
        "\"refresh_interval_ms\": 2500, \"username\": \"u\", \"password\": "
        "\"p\", "
        "\"tls\": {\"server_name\": \"redis.example\"}}, \"policies\": []}";
    char err[512];
    rl_conf_t *conf = parse(text, err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->store.cluster, 1);
    ck_assert_int_eq(conf->store.nnodes, 3);
    ck_assert_str_eq(conf->store.nodes[0].host, "10.0.0.1");
    ck_assert_int_eq(conf->store.nodes[0].port, 7000);
    ck_assert_str_eq(conf->store.nodes[1].host, "::1");
    ck_assert_int_eq(conf->store.nodes[1].port, 7001);
    ck_assert_str_eq(conf->store.nodes[2].host, "localhost");
    ck_assert_int_eq(conf->store.refresh_interval_ms, 2500);
    ck_assert_ptr_nonnull(conf->store.tls);
    ck_assert_ptr_null(conf->store.tls->ca_file);
    ck_assert_ptr_null(conf->store.tls->cert_file);
    ck_assert_str_eq(conf->store.tls->server_name, "redis.example");
    rl_conf_free(conf);

    conf = parse("{\"policies\": []}", err, sizeof(err));
    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->store.cluster, 0);
    ck_assert_int_eq(conf->store.nnodes, 0);
    ck_assert_ptr_null(conf->store.nodes);
    ck_assert_int_eq(conf->store.refresh_interval_ms, 5000);
    ck_assert_ptr_null(conf->store.tls);
    rl_conf_free(conf);
}
END_TEST

/* The defaults the descriptors carry reach every section, present or
 * absent, partly given or not, and every policy and limit; a field given
 * in the file replaces its default. */
START_TEST(test_defaults_from_descriptors)
{
    char err[256];
    const rl_policy_t *p;
    rl_conf_t *conf = parse(
        "{\"http\": {\"max_body_bytes\": 5}, \"store\": {\"prefix\": \"x\"}, "
        "\"auth\": {\"max_failures\": 3}, \"forward_auth\": "
        "{\"user_header\": \"X-U\"}, \"policies\": [{\"name\": \"a\", "
        "\"match\": {\"path\": \"/a\"}, \"limits\": [{\"requests\": 4, "
        "\"per\": \"1m\"}]}, {\"name\": \"b\", \"match\": {\"path\": \"/b\"}, "
        "\"deny\": {\"body\": {}}, \"limits\": [{\"requests\": 2, \"per\": "
        "\"1s\", \"algorithm\": \"fixed_window\"}]}]}",
        err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->http.max_body_bytes, 5);
    ck_assert_int_eq(conf->http.max_header_bytes, 65536);
    ck_assert_int_eq(conf->http.max_connections, 10000);
    ck_assert_str_eq(conf->store.prefix, "x");
    ck_assert_str_eq(conf->store.host, "127.0.0.1");
    ck_assert_int_eq(conf->store.port, 6379);
    ck_assert_int_eq(conf->store.refresh_interval_ms, 5000);
    ck_assert_ptr_null(conf->store.tls);
    ck_assert_int_eq(conf->auth.mode, RL_AUTH_NONE);
    ck_assert_int_eq(conf->auth.max_failures, 3);
    ck_assert_int_eq(conf->auth.max_clock_skew_s, 300);
    ck_assert_int_eq(conf->auth.failure_window_ms, 60000);
    ck_assert_ptr_null(conf->tls.cert_file);
    ck_assert_int_eq(conf->tls.min_version, 12);
    ck_assert_int_eq(conf->admin.enabled, 0);
    ck_assert(conf->ops.access_log_sample == 0.0);
    ck_assert_int_eq(conf->ops.deny_cache_entries, 16384);
    ck_assert_int_eq(conf->ops.deny_cache_max_ttl_ms, 10000);
    ck_assert_int_eq(conf->forward_auth.deny_status, 0);
    ck_assert_str_eq(conf->forward_auth.tenant_header, "x-tenant-id");
    ck_assert_str_eq(conf->forward_auth.user_header, "x-u");
    ck_assert_int_eq(conf->npolicies, 2);
    for (int i = 0; i < 2; i++) {
        p = &conf->policies[i];
        ck_assert_int_eq(p->index, i);
        ck_assert_ptr_null(p->method);
        ck_assert_int_eq(p->headers, RL_HEADERS_X_RATELIMIT);
        ck_assert_int_eq(p->failure_open, 1);
        ck_assert_int_eq(p->deny_status, 429);
        ck_assert_int_eq(p->shadow, 0);
        ck_assert_int_eq(p->verify_tenant, 0);
        ck_assert_ptr_null(p->test);
        ck_assert_int_eq(p->nkey, 0);
    }
    ck_assert_ptr_null(conf->policies[0].deny_body);
    ck_assert_ptr_nonnull(conf->policies[1].deny_body);
    check_limit(&conf->policies[0].limits[0], RL_ALGO_GCRA, 4, 60000, 4, 0,
                "g1m");
    check_limit(&conf->policies[1].limits[0], RL_ALGO_FIXED_WINDOW, 2, 1000, 2,
                0, "f1s");
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_listen_forms)
{
    static const struct {
        const char *listen;
        const char *host;
        int port;
    } rows[] = {
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"localhost:65535", "localhost", 65535},
        {"[::]:8081", "::", 8081},
        {"[fe80::1]:80", "fe80::1", 80},
    };
    char text[256];
    char err[256];
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        rl_conf_t *conf;

        snprintf(text, sizeof(text), "{\"listen\": \"%s\", \"policies\": []}",
                 rows[i].listen);
        conf = parse(text, err, sizeof(err));
        ck_assert_msg(conf != NULL, "%s: %s", rows[i].listen, err);
        ck_assert_str_eq(conf->listen_host, rows[i].host);
        ck_assert_int_eq(conf->listen_port, rows[i].port);
        rl_conf_free(conf);
    }
}
END_TEST

START_TEST(test_hash)
{
    const char *a = "{\"policies\": []}";
    const char *b = "{\"policies\": [] }";
    char digest[65];
    char err[256];
    rl_conf_t *ca = parse(a, err, sizeof(err));
    rl_conf_t *cb = parse(b, err, sizeof(err));

    ck_assert_ptr_nonnull(ca);
    ck_assert_ptr_nonnull(cb);
    rl_sha256_hex(a, strlen(a), digest);
    digest[16] = '\0';
    ck_assert_str_eq(ca->hash, digest);
    ck_assert_str_ne(ca->hash, cb->hash);
    rl_conf_free(ca);
    rl_conf_free(cb);
}
END_TEST

START_TEST(test_load_errors)
{
    char err[512];

    ck_assert_ptr_null(
        rl_conf_load("/nonexistent/ratelimitd.json", err, sizeof(err)));
    ck_assert_str_eq(
        err,
        "cannot read /nonexistent/ratelimitd.json: No such file or directory");

    ck_assert_ptr_null(
        rl_conf_load(FIXTURE("syntax-error.json"), err, sizeof(err)));
    ck_assert_str_eq(err, "line 3 column 20: string or '}' expected");

    ck_assert_ptr_null(
        parse("{\"policies\": [], \"policies\": []}", err, sizeof(err)));
    ck_assert_str_eq(err, "line 1 column 27: duplicate object key");

    ck_assert_ptr_null(parse("", err, sizeof(err)));
    ck_assert_str_eq(err,
                     "line 1 column 0: '[' or '{' expected near end of file");
}
END_TEST

/* A one-policy config whose policy is written out in full by the row. */
#define POL(p) "{\"policies\": [" p "]}"
/* A valid policy body; rows append or replace fields after it. */
#define BASE "\"name\": \"a\", \"match\": {\"path\": \"/x/{id}\"}"
#define LIM1 "\"limits\": [{\"requests\": 1, \"per\": \"1s\"}]"
/* A policy with BASE and LIM1 plus extra fields x. */
#define P(x) POL("{" BASE ", " LIM1 x "}")
/* A policy with BASE and the given limits. */
#define PL(l) POL("{" BASE ", \"limits\": [" l "]}")
/* A policy matching path m. */
#define PM(m) POL("{\"name\": \"a\", \"match\": " m ", " LIM1 "}")

static const struct {
    const char *json;
    const char *error;
} bad_rows[] = {
    /* top level */
    {"[]", "top level: must be an object"},
    {"{}", "policies: is required"},
    {"{\"polices\": []}", "polices: unknown field"},
    {"{\"policies\": {}}", "policies: must be an array"},
    {"{\"listen\": 8080, \"policies\": []}", "listen: must be a string"},
    {"{\"listen\": \"localhost\", \"policies\": []}",
     "listen: \"localhost\" is not host:port"},
    {"{\"listen\": \"::1:80\", \"policies\": []}",
     "listen: \"::1:80\" is not host:port"},
    {"{\"listen\": \":80\", \"policies\": []}",
     "listen: \":80\" is not host:port"},
    {"{\"listen\": \"[::1]80\", \"policies\": []}",
     "listen: \"[::1]80\" is not host:port"},
    {"{\"listen\": \"h:8o\", \"policies\": []}",
     "listen: \"h:8o\" is not host:port"},
    {"{\"listen\": \"127.0.0.1:70000\", \"policies\": []}",
     "listen: \"127.0.0.1:70000\": port must be from 0 to 65535"},
    {"{\"workers\": 257, \"policies\": []}",
     "workers: must be an integer from 0 to 256"},
    {"{\"workers\": -1, \"policies\": []}",
     "workers: must be an integer from 0 to 256"},
    {"{\"workers\": 1.5, \"policies\": []}",
     "workers: must be an integer from 0 to 256"},
    {"{\"workers\": \"4\", \"policies\": []}",
     "workers: must be an integer from 0 to 256"},
    {"{\"log_level\": \"verbose\", \"policies\": []}",
     "log_level: \"verbose\" is not one of debug, info, warn, error"},
    /* http */
    {"{\"http\": [], \"policies\": []}", "http: must be an object"},
    {"{\"http\": {\"max_bodybytes\": 1}, \"policies\": []}",
     "http.max_bodybytes: unknown field"},
    {"{\"http\": {\"max_body_bytes\": 0}, \"policies\": []}",
     "http.max_body_bytes: must be an integer from 1 to 2147483647"},
    {"{\"http\": {\"max_header_bytes\": -5}, \"policies\": []}",
     "http.max_header_bytes: must be an integer from 1 to 2147483647"},
    {"{\"http\": {\"read_timeout_ms\": true}, \"policies\": []}",
     "http.read_timeout_ms: must be an integer from 1 to 2147483647"},
    {"{\"http\": {\"idle_timeout_ms\": 0}, \"policies\": []}",
     "http.idle_timeout_ms: must be an integer from 1 to 2147483647"},
    {"{\"http\": {\"max_connections\": 0}, \"policies\": []}",
     "http.max_connections: must be an integer from 1 to 2147483647"},
    /* grpc */
    {"{\"grpc\": {\"read_timeout_ms\": 50}, \"policies\": []}",
     "grpc.read_timeout_ms: must be an integer from 100 to 86400000"},
    {"{\"grpc\": {\"read_timeout_ms\": \"10s\"}, \"policies\": []}",
     "grpc.read_timeout_ms: must be an integer from 100 to 86400000"},
    /* store */
    {"{\"store\": {\"type\": \"memcached\"}, \"policies\": []}",
     "store.type: the value is not one of redis, memory"},
    {"{\"store\": {\"address\": \"redis\"}, \"policies\": []}",
     "store.address: the value is not host:port"},
    {"{\"store\": {\"address\": \"redis:0\"}, \"policies\": []}",
     "store.address: the value: port must be from 1 to 65535"},
    {"{\"store\": {\"address\": \"redis.internal:6379\"}, \"policies\": []}",
     "store.address: the value must be a numeric IP address or "
     "localhost"},
    {"{\"store\": {\"timeout_ms\": 0}, \"policies\": []}",
     "store.timeout_ms: must be an integer from 1 to 60000"},
    {"{\"store\": {\"timeout_ms\": 60001}, \"policies\": []}",
     "store.timeout_ms: must be an integer from 1 to 60000"},
    {"{\"store\": {\"prefix\": \"a b\"}, \"policies\": []}",
     "store.prefix: the value must be 1 to 64 characters of A-Z a-z 0-9 _ . -"},
    {"{\"store\": {\"prefix\": \"\"}, \"policies\": []}",
     "store.prefix: the value must be 1 to 64 characters of A-Z a-z 0-9 _ . -"},
    {"{\"store\": {\"prefix\": \"{tag}\"}, \"policies\": []}",
     "store.prefix: the value must be 1 to 64 characters of A-Z a-z 0-9 _ . -"},
    /* a value in store is never quoted: it may hold user:password */
    {"{\"store\": {\"address\": \"redis-user:hunter2@10.0.0.5\"}, "
     "\"policies\": []}",
     "store.address: the value is not host:port"},
    {"{\"store\": {\"db\": 16}, \"policies\": []}",
     "store.db: must be an integer from 0 to 15"},
    {"{\"store\": {\"password\": 123}, \"policies\": []}",
     "store.password: must be a string"},
    {"{\"store\": {\"username\": null}, \"policies\": []}",
     "store.username: must be a string"},
    {"{\"store\": {\"host\": \"x\"}, \"policies\": []}",
     "store.host: unknown field"},
    {"{\"store\": {\"username\": \"u\"}, \"policies\": []}",
     "store.username: needs store.password"},
    /* store: cluster */
    {"{\"store\": {\"cluster\": \"yes\"}, \"policies\": []}",
     "store.cluster: must be true or false"},
    {"{\"store\": {\"cluster\": true}, \"policies\": []}",
     "store.nodes: is required with \"cluster\": true"},
    {"{\"store\": {\"cluster\": true, \"nodes\": []}, \"policies\": []}",
     "store.nodes: must be an array of 1 to 64 \"host:port\" strings"},
    {"{\"store\": {\"cluster\": true, \"nodes\": \"10.0.0.1:6379\"}, "
     "\"policies\": []}",
     "store.nodes: must be an array of 1 to 64 \"host:port\" strings"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:6379\", 7000]}, "
     "\"policies\": []}",
     "store.nodes[1]: must be a string"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"redis-1:6379\"]}, "
     "\"policies\": []}",
     "store.nodes[0]: the value must be a numeric IP address or "
     "localhost"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1\"]}, "
     "\"policies\": []}",
     "store.nodes[0]: the value is not host:port"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:0\"]}, "
     "\"policies\": []}",
     "store.nodes[0]: the value: port must be from 1 to 65535"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:7000\", "
     "\"10.0.0.2:7000\", "
     "\"10.0.0.1:7000\"]}, \"policies\": []}",
     "store.nodes[2]: the value repeats nodes[0]"},
    {"{\"store\": {\"nodes\": [\"10.0.0.1:7000\"]}, \"policies\": []}",
     "store.nodes: only applies with \"cluster\": true"},
    {"{\"store\": {\"refresh_interval_ms\": 1000}, \"policies\": []}",
     "store.refresh_interval_ms: only applies with \"cluster\": true"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:7000\"], "
     "\"refresh_interval_ms\": 99}, \"policies\": []}",
     "store.refresh_interval_ms: must be an integer from 100 to 3600000"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:7000\"], "
     "\"address\": \"10.0.0.1:7000\"}, \"policies\": []}",
     "store.address: not used with \"cluster\": true; list the seed nodes in "
     "store.nodes"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:7000\"], \"db\": "
     "1}, "
     "\"policies\": []}",
     "store.db: must be 0 with \"cluster\": true (a cluster has one database)"},
    {"{\"store\": {\"sentinel\": {\"master\": \"m\", \"nodes\": "
     "[\"10.0.0.1:26379\", \"redis-1:26379\"]}}, \"policies\": []}",
     "store.sentinel.nodes[1]: the value must be a numeric IP address "
     "or localhost"},
    {"{\"store\": {\"sentinel\": {\"nodes\": [\"10.0.0.1:26379\"]}}, "
     "\"policies\": []}",
     "store.sentinel.master: is required"},
    {"{\"store\": {\"sentinel\": {\"master\": \"m\", \"nodes\": "
     "[\"10.0.0.1:26379\"], \"username\": \"u\"}}, \"policies\": []}",
     "store.sentinel.username: needs store.sentinel.password"},
    {"{\"store\": {\"cluster\": true, \"nodes\": [\"10.0.0.1:7000\"], "
     "\"sentinel\": {\"master\": \"m\", \"nodes\": [\"10.0.0.1:26379\"]}}, "
     "\"policies\": []}",
     "store.sentinel: cannot be combined with \"cluster\": true"},
    {"{\"store\": {\"address\": \"10.0.0.1:6379\", \"sentinel\": "
     "{\"master\": \"m\", \"nodes\": [\"10.0.0.1:26379\"]}}, \"policies\": []}",
     "store.address: not used with store.sentinel (the sentinels name the "
     "master)"},
    /* store: tls */
    {"{\"store\": {\"tls\": true}, \"policies\": []}",
     "store.tls: must be an object"},
    {"{\"store\": {\"tls\": {\"ca\": \"x\"}}, \"policies\": []}",
     "store.tls.ca: unknown field"},
    {"{\"store\": {\"tls\": {\"ca_file\": \"/nonexistent/ca.crt\"}}, "
     "\"policies\": []}",
     "store.tls.ca_file: cannot read \"/nonexistent/ca.crt\": No such file or "
     "directory"},
    {"{\"store\": {\"tls\": {\"ca_file\": \"\"}}, \"policies\": []}",
     "store.tls.ca_file: cannot read \"\": empty path"},
    {"{\"store\": {\"tls\": {\"cert_file\": 1}}, \"policies\": []}",
     "store.tls.cert_file: must be a string"},
    {"{\"store\": {\"tls\": {\"server_name\": \"\"}}, \"policies\": []}",
     "store.tls.server_name: must not be empty"},
    {"{\"store\": {\"tls\": {\"key_file\": \"" RL_SRCDIR
     "/README.md\"}}, \"policies\": []}",
     "store.tls.key_file: needs store.tls.cert_file"},
    {"{\"store\": {\"tls\": {\"ca_file\": \"" RL_SRCDIR
     "/README.md\"}}, \"policies\": []}",
     "store.tls.ca_file: cannot load " RL_SRCDIR
     "/README.md: error:05800088:x509 certificate "
     "routines::no certificate or crl found"},
    /* policy */
    {POL("42"), "policies[0]: must be an object"},
    {POL("{\"match\": {\"path\": \"/\"}, " LIM1 "}"),
     "policies[0].name: is required"},
    {POL("{\"name\": \"a/b\", \"match\": {\"path\": \"/\"}, " LIM1 "}"),
     "policies[0].name: \"a/b\" must be 1 to 64 characters of A-Z a-z 0-9 _ . "
     "-"},
    {POL("{\"name\": "
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
         ", "
         "\"match\": {\"path\": \"/\"}, " LIM1 "}"),
     "policies[0].name: "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" "
     "must be 1 to 64 characters of A-Z a-z 0-9 _ . -"},
    {POL("{\"name\": \"x\", \"match\": {\"path\": \"/x\"}, " LIM1 "},"
         "{\"name\": \"api\", \"match\": {\"path\": \"/x\"}, " LIM1 "},"
         "{\"name\": \"y\", \"match\": {\"path\": \"/x\"}, " LIM1 "},"
         "{\"name\": \"api\", \"match\": {\"path\": \"/x\"}, " LIM1 "}"),
     "policies[3].name: \"api\" is used by policies[1]"},
    {P(", \"limts\": []"), "policies[0].limts: unknown field"},
    {POL("{\"name\": \"a\", " LIM1 "}"), "policies[0].match: is required"},
    {PM("\"/x\""), "policies[0].match: must be an object"},
    {PM("{\"method\": \"GET\"}"), "policies[0].match.path: is required"},
    {PM("{\"path\": \"/\", \"host\": \"h\"}"),
     "policies[0].match.host: unknown field"},
    {PM("{\"path\": \"x\"}"),
     "policies[0].match.path: \"x\": must start with '/'"},
    {PM("{\"path\": \"\"}"),
     "policies[0].match.path: \"\": must start with '/'"},
    {PM("{\"path\": \"/a/*/b\"}"),
     "policies[0].match.path: \"/a/*/b\": '*' must be the last segment"},
    {PM("{\"path\": \"/a*\"}"),
     "policies[0].match.path: \"/a*\": '*' must be a whole segment"},
    {PM("{\"path\": \"/a/{}\"}"),
     "policies[0].match.path: \"/a/{}\": empty parameter name"},
    {PM("{\"path\": \"/{id}/{id}\"}"),
     "policies[0].match.path: \"/{id}/{id}\": parameter {id} appears twice"},
    {PM("{\"path\": \"/{a-b}\"}"),
     "policies[0].match.path: \"/{a-b}\": parameter {a-b} must be letters, "
     "digits or '_'"},
    {PM("{\"path\": \"/v{id}\"}"),
     "policies[0].match.path: \"/v{id}\": a parameter must be a whole segment "
     "such as {id}"},
    {PM("{\"path\": \"/a?b=1\"}"), "policies[0].match.path: \"/a?b=1\": must "
                                   "not contain '?' or '#' (patterns match the "
                                   "path only)"},
    {PM("{\"path\": \"/\", \"method\": \"FETCH\"}"),
     "policies[0].match.method: \"FETCH\" is not one of GET, POST, PUT, PATCH, "
     "DELETE, HEAD, "
     "OPTIONS"},
    {PM("{\"path\": \"/\", \"method\": 1}"),
     "policies[0].match.method: must be a string"},
    /* key */
    {P(", \"key\": \"tenant\""),
     "policies[0].key: must be an array of 0 to 8 key fields"},
    {P(", \"key\": [\"tenant\", \"user\", \"ip\", \"method\", \"route\", "
       "\"path\", "
       "\"path.id\", \"header.a\", \"header.b\"]"),
     "policies[0].key: must be an array of 0 to 8 key fields"},
    {P(", \"key\": [5]"), "policies[0].key[0]: must be a string"},
    {P(", \"key\": [\"tenantt\"]"),
     "policies[0].key[0]: \"tenantt\" is not a key field (tenant, user, ip, "
     "method, route, "
     "path, path.NAME, header.NAME, descriptor.NAME)"},
    {P(", \"key\": [\"Tenant\"]"),
     "policies[0].key[0]: \"Tenant\" is not a key field (tenant, user, ip, "
     "method, route, "
     "path, path.NAME, header.NAME, descriptor.NAME)"},
    {P(", \"key\": [\"tenant\", \"path.site\"]"),
     "policies[0].key[1]: \"path.site\" needs a {site} segment in match.path"},
    {P(", \"key\": [\"path.\"]"),
     "policies[0].key[0]: \"path.\" needs a parameter name"},
    {P(", \"key\": [\"header.\"]"),
     "policies[0].key[0]: \"header.\" does not name a valid header"},
    {P(", \"key\": [\"header.x y\"]"),
     "policies[0].key[0]: \"header.x y\" does not name a valid header"},
    {P(", \"key\": [\"tenant\", \"tenant\"]"),
     "policies[0].key[1]: \"tenant\" repeats key[0]"},
    {P(", \"key\": [\"header.X-A\", \"header.x-a\"]"),
     "policies[0].key[1]: \"header.x-a\" repeats key[0]"},
    /* limits */
    {POL("{" BASE "}"), "policies[0].limits: is required"},
    {POL("{" BASE ", \"limits\": {}}"),
     "policies[0].limits: must be an array of 0 to 8 limits"},
    {"{\"penalties\": [{\"name\": \"p\", \"key\": [\"user\"], "
     "\"denials\": 1, \"within\": \"1s\", \"block\": \"1s\"}], "
     "\"policies\": [{" BASE ", \"limits\": [], \"penalty\": \"p\"}]}",
     "policies[0].penalty: needs limits: a policy with \"limits\": [] never "
     "denies"},
    {PL("{\"requests\": 1, \"per\": \"1s\"}, {\"requests\": 1, \"per\": "
        "\"2s\"}, "
        "{\"requests\": 1, \"per\": \"3s\"}, {\"requests\": 1, \"per\": "
        "\"4s\"}, "
        "{\"requests\": 1, \"per\": \"5s\"}, {\"requests\": 1, \"per\": "
        "\"6s\"}, "
        "{\"requests\": 1, \"per\": \"7s\"}, {\"requests\": 1, \"per\": "
        "\"8s\"}, "
        "{\"requests\": 1, \"per\": \"9s\"}"),
     "policies[0].limits: must be an array of 0 to 8 limits"},
    {PL("\"1/s\""), "policies[0].limits[0]: must be an object"},
    {PL("{\"per\": \"1s\"}"), "policies[0].limits[0].requests: is required"},
    {PL("{\"requests\": 1}"), "policies[0].limits[0].per: is required"},
    {PL("{\"requests\": 0, \"per\": \"1s\"}"),
     "policies[0].limits[0].requests: must be an integer from 1 to "
     "1000000000000"},
    {PL("{\"requests\": 1000000000001, \"per\": \"1s\"}"),
     "policies[0].limits[0].requests: must be an integer from 1 to "
     "1000000000000"},
    {PL("{\"requests\": 1, \"per\": \"5x\"}"),
     "policies[0].limits[0].per: \"5x\" is not a duration"},
    {PL("{\"requests\": 1, \"per\": \"0s\"}"),
     "policies[0].limits[0].per: \"0s\" is not a duration"},
    {PL("{\"requests\": 1, \"per\": 10}"),
     "policies[0].limits[0].per: must be a duration string such as \"10s\""},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"algorithm\": \"token_bucket\"}"),
     "policies[0].limits[0].algorithm: \"token_bucket\" is not one of gcra, "
     "fixed_window, "
     "sliding_window"},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"algorithm\": \"fixed_window\", "
        "\"burst\": 2}"),
     "policies[0].limits[0].burst: only applies to algorithm \"gcra\""},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"algorithm\": \"sliding_window\", "
        "\"burst\": 2}"),
     "policies[0].limits[0].burst: only applies to algorithm \"gcra\""},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"burst\": 0}"),
     "policies[0].limits[0].burst: must be an integer from 1 to 1000000000000"},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"block\": \"forever\"}"),
     "policies[0].limits[0].block: \"forever\" is not a duration"},
    {PL("{\"requests\": 1, \"per\": \"1s\", \"window\": \"1s\"}"),
     "policies[0].limits[0].window: unknown field"},
    {PL("{\"requests\": 10, \"per\": \"1m\"}, {\"requests\": 20, \"per\": "
        "\"60s\"}"),
     "policies[0].limits[1]: same algorithm and period as limits[0]"},
    /* ranges that keep the arithmetic exact (docs/algorithms.md) */
    {PL("{\"requests\": 1000, \"per\": \"2147483648ms\", \"burst\": "
        "1048577}"),
     "policies[0].limits[0].burst: burst x emission interval (1048577 x "
     "2147483648 us) must be at most 2^51 us: at most 1048576 for this "
     "requests and per"},
    {PL("{\"requests\": 1, \"per\": \"3650d\", \"burst\": 8}"),
     "policies[0].limits[0].burst: burst x emission interval (8 x "
     "315360000000000 us) must be at most 2^51 us: at most 7 for this "
     "requests and per"},
    {PL("{\"requests\": 1048577, \"per\": \"2147483648ms\", "
        "\"algorithm\": \"sliding_window\"}"),
     "policies[0].limits[0].requests: requests x per (1048577 x 2147483648 "
     "ms) must be at most 2^51: at most 1048576 for this per"},
    {POL("{\"name\": \"x\", \"match\": {\"path\": \"/x\"}, " LIM1 "},"
         "{\"name\": \"y\", \"match\": {\"path\": \"/y\"}, " LIM1 "},"
         "{\"name\": \"z\", \"match\": {\"path\": \"/z\"}, "
         "\"limits\": [{\"requests\": 1, \"per\": \"5x\"}]}"),
     "policies[2].limits[0].per: \"5x\" is not a duration"},
    /* test */
    {P(", \"test\": []"), "policies[0].test: must be an object"},
    {P(", \"test\": {\"value\": \"match\", " LIM1 "}"),
     "policies[0].test.header: is required"},
    {P(", \"test\": {\"header\": \"t\", " LIM1 "}"),
     "policies[0].test.value: is required"},
    {P(", \"test\": {\"header\": \"t\", \"value\": \"v\"}"),
     "policies[0].test.limits: is required"},
    {P(", \"test\": {\"header\": \"bad header\", \"value\": \"v\", " LIM1 "}"),
     "policies[0].test.header: \"bad header\" is not a header name"},
    {P(", \"test\": {\"header\": \"t\", \"value\": 1, " LIM1 "}"),
     "policies[0].test.value: must be a string"},
    {P(", \"test\": {\"header\": \"t\", \"value\": \"v\", \"limits\": ["
       "{\"requests\": 1, \"per\": \"1s\"}, {\"requests\": 2, \"per\": "
       "\"1000ms\"}]}"),
     "policies[0].test.limits[1]: same algorithm and period as limits[0]"},
    {P(", \"test\": {\"header\": \"t\", \"value\": \"v\", \"limits\": "
       "[{\"requests\": 1}]}"),
     "policies[0].test.limits[0].per: is required"},
    /* headers, failure_mode, deny, mode */
    {P(", \"headers\": \"x-rate\""),
     "policies[0].headers: \"x-rate\" is not one of x-ratelimit, "
     "x-ratelimit-retry-after, "
     "ietf, none"},
    {P(", \"failure_mode\": \"half\""),
     "policies[0].failure_mode: \"half\" is not one of open, closed"},
    {P(", \"failure_mode\": false"),
     "policies[0].failure_mode: must be a string"},
    {P(", \"deny\": 429"), "policies[0].deny: must be an object"},
    {P(", \"deny\": {\"status\": 200}"),
     "policies[0].deny.status: must be an integer from 400 to 599"},
    {P(", \"deny\": {\"status\": 600}"),
     "policies[0].deny.status: must be an integer from 400 to 599"},
    {P(", \"deny\": {\"code\": \"RATE_001\"}"),
     "policies[0].deny.code: unknown field"},
    {P(", \"mode\": \"dry-run\""),
     "policies[0].mode: \"dry-run\" is not one of enforce, shadow"},
    /* unavailable */
    {P(", \"unavailable\": 503"), "policies[0].unavailable: must be an object"},
    {P(", \"unavailable\": {\"status\": 429}"),
     "policies[0].unavailable.status: must be an integer from 500 to 599"},
    {P(", \"unavailable\": {\"status\": 600}"),
     "policies[0].unavailable.status: must be an integer from 500 to 599"},
    {P(", \"unavailable\": {\"status\": \"503\"}"),
     "policies[0].unavailable.status: must be an integer from 500 to 599"},
    {P(", \"unavailable\": {\"code\": \"STORE_001\"}"),
     "policies[0].unavailable.code: unknown field"},
    /* groups, hash_tag, penalties */
    {P(", \"group\": \"a b\""), "policies[0].group: \"a b\" must be 1 to 64 "
                                "characters of A-Z a-z 0-9 _ . -"},
    {P(", \"key\": [\"tenant\"], \"hash_tag\": [\"user\"]"),
     "policies[0].hash_tag[0]: \"user\" is not in the policy's key"},
    {P(", \"key\": [\"tenant\"], \"hash_tag\": []"),
     "policies[0].hash_tag: must be an array of 1 to 8 key fields"},
    {P(", \"penalty\": \"nope\""),
     "policies[0].penalty: \"nope\" is not in the top-level \"penalties\""},
    {"{\"penalties\": [{\"name\": \"p\", \"key\": [\"route\"], "
     "\"denials\": 1, \"within\": \"1s\", \"block\": \"1s\"}], "
     "\"policies\": []}",
     "penalties[0].key[0]: must be one of tenant, user, ip, method, "
     "header.NAME"},
    {"{\"penalties\": [{\"name\": \"p\", \"key\": [\"user\"], "
     "\"within\": \"1s\", \"block\": \"1s\"}], \"policies\": []}",
     "penalties[0].denials: is required"},
    {"{\"penalties\": [{\"name\": \"p\", \"key\": [\"user\"], "
     "\"denials\": 1, \"within\": \"1s\", \"block\": \"1s\"}, "
     "{\"name\": \"p\", \"key\": [\"ip\"], \"denials\": 1, \"within\": "
     "\"1s\", \"block\": \"1s\"}], \"policies\": []}",
     "penalties[1]: name \"p\" is used by penalties[0]"},
    {"{\"store\": {\"type\": \"redis\", \"cluster\": true, \"nodes\": "
     "[\"127.0.0.1:7000\"]}, \"policies\": [{" BASE ", " LIM1
     ", \"group\": \"g\"}, {\"name\": \"b\", \"match\": {\"path\": "
     "\"/*\"}, " LIM1 "}]}",
     "policies[0].hash_tag: required with a Redis Cluster when policies are "
     "layered (groups or penalties): every policy must share one hash_tag"},
};

/* "unavailable": absent by default (the STORE_001 reply); status 503 by
 * default; the body kept as written, placeholders and all. */
START_TEST(test_unavailable)
{
    char err[256];
    rl_conf_t *conf = parse(
        POL("{" BASE ", " LIM1 "}, {\"name\": \"b\", \"match\": {\"path\": "
            "\"/b\"}, " LIM1 ", \"unavailable\": {\"body\": {\"error\": "
            "\"service temporarily unavailable\", \"trace_id\": "
            "\"{trace_id}\"}}}, {\"name\": \"c\", \"match\": {\"path\": "
            "\"/c\"}, " LIM1 ", \"unavailable\": {\"status\": 599}}"),
        err, sizeof(err));
    char *s;

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_ptr_null(conf->policies[0].unavailable);
    ck_assert_ptr_nonnull(conf->policies[1].unavailable);
    ck_assert_int_eq(conf->policies[1].unavailable->status, 503);
    s = json_dumps(conf->policies[1].unavailable->body,
                   JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_str_eq(s, "{\"error\":\"service temporarily unavailable\","
                        "\"trace_id\":\"{trace_id}\"}");
    free(s);
    ck_assert_int_eq(conf->policies[2].unavailable->status, 599);
    ck_assert_ptr_null(conf->policies[2].unavailable->body);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_bad_config)
{
    char err[512];
    rl_conf_t *conf;

    conf = parse(bad_rows[_i].json, err, sizeof(err));
    if (conf != NULL) {
        rl_conf_free(conf);
    }
    ck_assert_msg(conf == NULL, "row %d was accepted: %s", _i,
                  bad_rows[_i].json);
    ck_assert_msg(strcmp(err, bad_rows[_i].error) == 0,
                  "row %d: %s\n  got:  %s\n  want: %s", _i, bad_rows[_i].json,
                  err, bad_rows[_i].error);
}
END_TEST

/* A row that is almost bad stays good: each bad row above differs from an
 * accepted config by one value, so the table cannot pass by rejecting
 * everything. */
START_TEST(test_near_misses_accepted)
{
    static const char *const good[] = {
        P(""),
        P(", \"key\": []"),
        PL(""),
        POL("{" BASE ", \"limits\": [], \"test\": {\"header\": \"t\", "
            "\"value\": \"v\", " LIM1 "}}"),
        P(", \"key\": [\"tenant\", \"path.id\", \"header.X-Y\"]"),
        PL("{\"requests\": 10, \"per\": \"1m\"}, {\"requests\": 20, \"per\": "
           "\"60s\", "
           "\"algorithm\": \"fixed_window\"}"),
        PL("{\"requests\": 1, \"per\": \"1s\", \"algorithm\": "
           "\"fixed_window\", "
           "\"block\": \"1m\"}"),
        PM("{\"path\": \"/\", \"method\": \"options\"}"),
        PM("{\"path\": \"/a/{b_1}/*\"}"),
        P(", \"test\": {\"header\": \"t\", \"value\": \"v\", " LIM1 "}"),
        P(", \"deny\": {\"status\": 400, \"body\": null}"),
        P(", \"deny\": {\"status\": 599, \"body\": [1, \"{limit}\"]}"),
        "{\"store\": {\"type\": \"memory\", \"db\": 15, \"timeout_ms\": "
        "60000}, \"policies\": []}",
        "{\"http\": {\"max_body_bytes\": 2147483647}, \"policies\": []}",
        PL("{\"requests\": 1000, \"per\": \"2147483648ms\", \"burst\": "
           "1048576}"),
        PL("{\"requests\": 1, \"per\": \"3650d\", \"burst\": 7}"),
        PL("{\"requests\": 1000000000000, \"per\": \"3650d\"}"),
        PL("{\"requests\": 1048576, \"per\": \"2147483648ms\", "
           "\"algorithm\": \"sliding_window\"}"),
        PL("{\"requests\": 1000000000000, \"per\": \"3650d\", "
           "\"algorithm\": \"fixed_window\"}"),
    };
    char err[512];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        rl_conf_t *conf = parse(good[i], err, sizeof(err));

        ck_assert_msg(conf != NULL, "good row %zu rejected: %s", i, err);
        rl_conf_free(conf);
    }
}
END_TEST

/* Builds the suite. */
static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");

    tcase_add_test(tc, test_example_top_level);
    tcase_add_test(tc, test_example_platform);
    tcase_add_test(tc, test_example_build_payments_events);
    tcase_add_test(tc, test_full_fixture);
    tcase_add_loop_test(tc, test_limit_suffix, 0,
                        (int)(sizeof(suffix_rows) / sizeof(suffix_rows[0])));
    tcase_add_test(tc, test_limit_suffix_parsed);
    tcase_add_test(tc, test_store_cluster_and_tls);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_grpc_timeouts);
    tcase_add_test(tc, test_unavailable);
    tcase_add_test(tc, test_defaults_from_descriptors);
    tcase_add_test(tc, test_listen_forms);
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_load_errors);
    tcase_add_loop_test(tc, test_bad_config, 0,
                        (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
    tcase_add_test(tc, test_near_misses_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
