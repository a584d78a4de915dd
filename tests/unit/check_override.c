/* Unit tests of override.c and conf_override.c: config overrides parsed
 * (key specs of the policy only, limits by the policy parser so suffixes
 * match, deny), their errors naming the JSON path, and rl_override_find's
 * order: most fields wins, on a tie admin before config, then file /
 * insertion order; expired admin entries skipped. Pure: no store. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "override.h"

/* A policy keyed by tenant, user and a header, with OVR as its overrides. */
#define CONF(OVR)                                                              \
    "{\"store\": {\"type\": \"memory\"}, \"policies\": [{\"name\": \"p\", "    \
    "\"match\": {\"path\": \"/*\"}, \"key\": [\"tenant\", \"user\", "          \
    "\"header.x-plan\"], \"limits\": [{\"requests\": 10, \"per\": \"1m\", "    \
    "\"algorithm\": \"fixed_window\"}], \"overrides\": " OVR "}]}"

static rl_conf_t *conf_from(const char *text, char *err, size_t errlen)
{
    return rl_conf_parse(text, strlen(text), err, errlen);
}

/* Key values: tenant, user, plan (NULL: absent). */
static void vals_set(rl_override_vals_t *v, const char *t, const char *u,
                     const char *plan)
{
    const char *in[3] = {t, u, plan};
    int i;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < 3; i++) {
        v->v[i] = in[i];
        v->len[i] = in[i] != NULL ? strlen(in[i]) : 0;
    }
}

START_TEST(test_config_overrides_parsed)
{
    char err[512];
    rl_conf_t *conf = conf_from(
        CONF("[{\"key\": {\"tenant\": \"big\"}, \"limits\": [{\"requests\": "
             "50, \"per\": \"60s\", \"algorithm\": \"fixed_window\"}]}, "
             "{\"key\": {\"tenant\": \"bad\"}, \"deny\": {\"status\": 403, "
             "\"body\": {\"error\": \"suspended\"}}}]"),
        err, sizeof(err));
    const rl_policy_t *p;
    const rl_override_t *o;

    ck_assert_msg(conf != NULL, "%s", err);
    p = &conf->policies[0];
    ck_assert_ptr_nonnull(p->overrides);
    ck_assert_int_eq(p->overrides->n, 2);
    o = &p->overrides->items[0];
    ck_assert_int_eq(o->nlimits, 1);
    ck_assert_int_eq(o->limits[0].requests, 50);
    /* Same algorithm and period as the policy's: the same state. */
    ck_assert_str_eq(o->limits[0].suffix, p->limits[0].suffix);
    ck_assert_int_eq(o->fields[0].index, 0);
    o = &p->overrides->items[1];
    ck_assert_ptr_null(o->limits);
    ck_assert_int_eq(o->deny_status, 403);
    ck_assert_str_eq(json_string_value(json_object_get(o->deny_body, "error")),
                     "suspended");
    ck_assert_str_eq(json_string_value(json_object_get(o->json, "source")),
                     "config");
    rl_conf_free(conf);
}
END_TEST

static const struct {
    const char *overrides;
    const char *error; /* the start of the message */
} bad_cases[] = {
    {"[{\"key\": {\"ip\": \"1\"}, \"deny\": {}}]",
     "policies[0].overrides[0].key.ip: is not a key field"},
    {"[{\"key\": {}, \"deny\": {}}]", "policies[0].overrides[0].key: must"},
    {"[{\"key\": {\"tenant\": 1}, \"deny\": {}}]",
     "policies[0].overrides[0].key.tenant: must be a non-empty string"},
    {"[{\"deny\": {}}]", "policies[0].overrides[0].key: is required"},
    {"[{\"key\": {\"tenant\": \"a\"}}]",
     "policies[0].overrides[0].limits: is required"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {}, \"limits\": []}]",
     "policies[0].overrides[0].limits: and \"deny\" exclude"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"limits\": [{\"requests\": 0, "
     "\"per\": \"1m\"}]}]",
     "policies[0].overrides[0].limits[0].requests:"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {\"status\": 302}}]",
     "policies[0].overrides[0].deny.status:"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {\"x\": 1}}]",
     "policies[0].overrides[0].deny.x: unknown field"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {}, \"ttl\": \"1s\"}]",
     "policies[0].overrides[0].ttl: unknown field"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {}}, {\"key\": {\"tenant\": "
     "\"a\"}, \"deny\": {}}]",
     "policies[0].overrides[1]: same key as overrides[0]"},
    {"{}", "policies[0].overrides: must be an array"},
    {"[{\"key\": {\"tenant\": \"a\"}, \"deny\": {\"body\": {\"m\": "
     "[\"in {retry_after_human}\"]}}}]",
     "policies[0].overrides[0].deny: without a ttl there is no retry time"},
};

/* An "ip" override is kept canonical, as requests' addresses are keyed,
 * so any spelling of the address matches; a non-address as written. */
START_TEST(test_ip_override_canonical)
{
    char err[512];
    rl_conf_t *conf = conf_from(
        "{\"store\": {\"type\": \"memory\"}, \"policies\": [{\"name\": \"p\", "
        "\"match\": {\"path\": \"/*\"}, \"key\": [\"ip\"], \"limits\": "
        "[{\"requests\": 10, \"per\": \"1m\"}], \"overrides\": ["
        "{\"key\": {\"ip\": \"2001:DB8:0::1\"}, \"deny\": {}},"
        "{\"key\": {\"ip\": \"unix-socket\"}, \"deny\": {}}]}]}",
        err, sizeof(err));
    const rl_override_set_t *set;

    ck_assert_msg(conf != NULL, "%s", err);
    set = conf->policies[0].overrides;
    ck_assert_int_eq(set->n, 2);
    ck_assert_str_eq(set->items[0].fields[0].value, "2001:db8::1");
    ck_assert_int_eq(set->items[0].fields[0].len, 11);
    ck_assert_str_eq(set->items[1].fields[0].value, "unix-socket");
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_config_overrides_refused)
{
    char text[1024];
    char err[512];
    rl_conf_t *conf;

    snprintf(text, sizeof(text), CONF("%s"), bad_cases[_i].overrides);
    conf = conf_from(text, err, sizeof(err));
    ck_assert_ptr_null(conf);
    ck_assert_msg(
        strncmp(err, bad_cases[_i].error, strlen(bad_cases[_i].error)) == 0,
        "%s: got %s", bad_cases[_i].overrides, err);
}
END_TEST

START_TEST(test_find_order)
{
    char err[512];
    rl_conf_t *conf = conf_from(
        CONF("[{\"key\": {\"tenant\": \"a\"}, \"deny\": {\"status\": 401}}, "
             "{\"key\": {\"user\": \"u\"}, \"deny\": {\"status\": 402}}, "
             "{\"key\": {\"tenant\": \"a\", \"user\": \"u\"}, "
             "\"deny\": {\"status\": 403}}]"),
        err, sizeof(err));
    const rl_policy_t *p;
    rl_override_snap_t snap;
    rl_override_t admin[2];
    rl_override_vals_t v;
    json_t *obj;
    int missing, i;

    ck_assert_msg(conf != NULL, "%s", err);
    p = &conf->policies[0];
    vals_set(&v, "a", "u", NULL);
    ck_assert_int_eq(rl_override_find(p, &v, NULL, 0)->deny_status, 403);
    vals_set(&v, "a", "x", NULL);
    ck_assert_int_eq(rl_override_find(p, &v, NULL, 0)->deny_status, 401);
    vals_set(&v, "b", "u", NULL);
    ck_assert_int_eq(rl_override_find(p, &v, NULL, 0)->deny_status, 402);
    vals_set(&v, "b", "x", "gold");
    ck_assert_ptr_null(rl_override_find(p, &v, NULL, 0));
    vals_set(&v, "ab", "u", NULL); /* a prefix is not equal */
    ck_assert_int_eq(rl_override_find(p, &v, NULL, 0)->deny_status, 402);

    /* Admin entries: {"tenant": "a"} (ties with config: admin wins) and
     * {"tenant": "a", "user": "u", x-plan} (most fields), the latter
     * expiring at 100. */
    for (i = 0; i < 2; i++) {
        obj = json_loads(i == 0 ? "{\"key\": {\"tenant\": \"a\"}, \"deny\": "
                                  "{\"status\": 410}}"
                                : "{\"key\": {\"tenant\": \"a\", \"user\": "
                                  "\"u\", \"header.x-plan\": \"gold\"}, "
                                  "\"deny\": {\"status\": 411}}",
                         0, NULL);
        ck_assert_int_eq(rl_override_parse(p, obj, "", 0, &admin[i], err,
                                           sizeof(err), &missing),
                         0);
        admin[i].source = RL_OVERRIDE_ADMIN;
        json_decref(obj);
    }
    admin[1].expires_at = 100;
    memset(&snap, 0, sizeof(snap));
    snap.items = admin;
    snap.n = 2;
    vals_set(&v, "a", "x", NULL);
    ck_assert_int_eq(rl_override_find(p, &v, &snap, 50)->deny_status, 410);
    vals_set(&v, "a", "u", NULL);
    ck_assert_int_eq(rl_override_find(p, &v, &snap, 50)->deny_status, 403);
    vals_set(&v, "a", "u", "gold");
    ck_assert_int_eq(rl_override_find(p, &v, &snap, 50)->deny_status, 411);
    ck_assert_int_eq(rl_override_find(p, &v, &snap, 100)->deny_status, 403);
    ck_assert_str_eq(rl_override_source_name(admin[1].source), "admin");
    for (i = 0; i < 2; i++) {
        rl_override_clear(&admin[i]);
    }
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_field_is_canonical)
{
    char err[512];
    rl_conf_t *conf = conf_from(
        CONF("[{\"key\": {\"user\": \"u\", \"tenant\": \"a\"}, \"deny\": {}}]"),
        err, sizeof(err));
    char *field;

    ck_assert_msg(conf != NULL, "%s", err);
    field = rl_override_field(&conf->policies[0].overrides->items[0]);
    ck_assert_str_eq(field, "p\n{\"tenant\":\"a\",\"user\":\"u\"}");
    free(field);
    rl_conf_free(conf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("override");
    TCase *tc = tcase_create("override");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_config_overrides_parsed);
    tcase_add_test(tc, test_ip_override_canonical);
    tcase_add_loop_test(tc, test_config_overrides_refused, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_find_order);
    tcase_add_test(tc, test_field_is_canonical);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
