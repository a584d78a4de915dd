/* Unit tests of convert_envoy.c and convert_yaml.c: envoyproxy/ratelimit
 * YAML in, the exact ratelimitd policies out (compared as JSON values),
 * and every refused construct named "FILE:LINE: problem". Pure. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "convert_envoy.h"

/* Converts the files texts[0..n-1] (named a.yaml, b.yaml, ...). The
 * JSON text (caller frees) or NULL with err set. */
static char *convert(const char *const *texts, int n, char *err, size_t errlen)
{
    rl_convert_t *cv = rl_convert_new();
    char name[16];
    char *out = NULL;
    int i;

    ck_assert_ptr_nonnull(cv);
    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%c.yaml", 'a' + i);
        if (rl_convert_add(cv, name, texts[i], strlen(texts[i]), err, errlen) !=
            0) {
            rl_convert_free(cv);
            return NULL;
        }
    }
    out = rl_convert_json(cv, err, errlen);
    rl_convert_free(cv);
    return out;
}

/* Asserts that texts convert to the policies want (JSON text). */
static void expect(const char *const *texts, int n, const char *want)
{
    char err[512] = "";
    char *got = convert(texts, n, err, sizeof(err));
    json_t *g, *w, *wrapped;

    ck_assert_msg(got != NULL, "conversion failed: %s", err);
    g = json_loads(got, 0, NULL);
    w = json_loads(want, 0, NULL);
    ck_assert_ptr_nonnull(w);
    wrapped = json_pack("{s:O}", "policies", w);
    ck_assert_msg(json_equal(g, wrapped), "got %s", got);
    json_decref(g);
    json_decref(w);
    json_decref(wrapped);
    free(got);
}

/* A limit of the output: fixed_window, requests R per P. */
#define LIM(R, P)                                                              \
    "[{\"requests\": " #R ", \"per\": \"" P "\", \"algorithm\": "              \
    "\"fixed_window\"}]"

START_TEST(test_nested_and_specific_first)
{
    /* envoyproxy/ratelimit's example 2 plus a per-value entry written
     * after the general one: it still comes first. */
    static const char *const y[] = {
        "domain: messaging\n"
        "descriptors:\n"
        "  - key: to_number\n"
        "    rate_limit: {unit: day, requests_per_unit: 100}\n"
        "  - key: message_type\n"
        "    value: marketing\n"
        "    descriptors:\n"
        "      - key: to_number\n"
        "        rate_limit:\n"
        "          unit: DAY\n"
        "          requests_per_unit: 5\n"
        "  - key: to_number\n"
        "    value: '2061111111'\n"
        "    detailed_metric: true\n"
        "    rate_limit: {unit: Second, requests_per_unit: 1}\n"};

    expect(
        y, 1,
        "[{\"name\": \"messaging.message_type_marketing.to_number\","
        " \"match\": {\"domain\": \"messaging\", \"descriptor\": ["
        "{\"key\": \"message_type\", \"value\": \"marketing\"},"
        " {\"key\": \"to_number\"}]},"
        " \"key\": [\"descriptor.to_number\"], \"limits\": " LIM(
            5, "1d") "},"
                     "{\"name\": \"messaging.to_number_2061111111\","
                     " \"match\": {\"domain\": \"messaging\", \"descriptor\": ["
                     "{\"key\": \"to_number\", \"value\": \"2061111111\"}]},"
                     " \"key\": [], \"limits\": " LIM(
                         1, "1s") "},"
                                  "{\"name\": \"messaging.to_number\","
                                  " \"match\": {\"domain\": \"messaging\", "
                                  "\"descriptor\": ["
                                  "{\"key\": \"to_number\"}]},"
                                  " \"key\": [\"descriptor.to_number\"], "
                                  "\"limits\": " LIM(100, "1d") "}]");
}
END_TEST

START_TEST(test_units_shadow_and_files)
{
    static const char *const y[] = {
        "domain: a\n"
        "descriptors:\n"
        "  - {key: m, rate_limit: {unit: minute, requests_per_unit: 2}}\n"
        "  - {key: h, rate_limit: {unit: hour, requests_per_unit: 3},"
        " shadow_mode: true}\n"
        "  - {key: w, rate_limit: {unit: week, requests_per_unit: 4}}\n",
        "domain: b\n"
        "descriptors:\n"
        "  - {key: mo, rate_limit: {unit: month, requests_per_unit: 5}}\n"
        "  - {key: y, rate_limit: {unit: year, requests_per_unit: 6}}\n",
        "domain: a\n"
        "descriptors:\n"
        "  - {key: l, value: x, rate_limit: {unlimited: true}}\n"};

    expect(
        y, 3,
        "[{\"name\": \"a.l_x\", \"match\": {\"domain\": \"a\", "
        "\"descriptor\": [{\"key\": \"l\", \"value\": \"x\"}]}, "
        "\"key\": [], \"limits\": []},"
        "{\"name\": \"a.m\", \"match\": {\"domain\": \"a\", "
        "\"descriptor\": [{\"key\": \"m\"}]}, \"key\": [\"descriptor.m\"],"
        " \"limits\": " LIM(
            2,
            "1m") "},"
                  "{\"name\": \"a.h\", \"match\": {\"domain\": \"a\", "
                  "\"descriptor\": [{\"key\": \"h\"}]}, \"key\": "
                  "[\"descriptor.h\"],"
                  " \"limits\": " LIM(
                      3,
                      "1h") ", \"mode\": \"shadow\"},"
                            "{\"name\": \"a.w\", \"match\": {\"domain\": "
                            "\"a\", "
                            "\"descriptor\": [{\"key\": \"w\"}]}, \"key\": "
                            "[\"descriptor.w\"],"
                            " \"limits\": " LIM(
                                4,
                                "7d") "},"
                                      "{\"name\": \"b.mo\", \"match\": "
                                      "{\"domain\": \"b\", "
                                      "\"descriptor\": [{\"key\": \"mo\"}]}, "
                                      "\"key\": [\"descriptor.mo\"],"
                                      " \"limits\": " LIM(
                                          5,
                                          "30d") "},"
                                                 "{\"name\": \"b.y\", "
                                                 "\"match\": {\"domain\": "
                                                 "\"b\", "
                                                 "\"descriptor\": [{\"key\": "
                                                 "\"y\"}]}, \"key\": "
                                                 "[\"descriptor.y\"],"
                                                 " \"limits\": " LIM(
                                                     6, "365d") "}]");
}
END_TEST

START_TEST(test_unlimited_allow_list)
{
    /* The allow-list case: an unlimited value written after the general
     * limit becomes a limit-less policy ordered before it, so the
     * general policy never counts that value; a nested unlimited key
     * too. */
    static const char *const y[] = {
        "domain: edge\n"
        "descriptors:\n"
        "  - key: ip\n"
        "    rate_limit: {unit: second, requests_per_unit: 5}\n"
        "  - key: ip\n"
        "    value: 10.0.0.1\n"
        "    rate_limit: {unlimited: true}\n"
        "  - key: user\n"
        "    descriptors:\n"
        "      - key: plan\n"
        "        rate_limit: {unlimited: true}\n"};

    expect(
        y, 1,
        "[{\"name\": \"edge.ip_10.0.0.1\", \"match\": {\"domain\": "
        "\"edge\", \"descriptor\": [{\"key\": \"ip\", \"value\": "
        "\"10.0.0.1\"}]}, \"key\": [], \"limits\": []},"
        " {\"name\": \"edge.ip\", \"match\": {\"domain\": \"edge\", "
        "\"descriptor\": [{\"key\": \"ip\"}]}, \"key\": "
        "[\"descriptor.ip\"], \"limits\": " LIM(
            5,
            "1s") "},"
                  " {\"name\": \"edge.user.plan\", \"match\": {\"domain\": "
                  "\"edge\", \"descriptor\": [{\"key\": \"user\"}, {\"key\": "
                  "\"plan\"}]}, \"key\": [], \"limits\": []}]");
}
END_TEST

START_TEST(test_deny_all_and_names)
{
    /* requests_per_unit 0 (example 3's blocked address): a deny override
     * on the fixed value; a name outside the alphabet uses '-'. */
    static const char *const y[] = {
        "domain: edge\n"
        "descriptors:\n"
        "  - key: remote_address\n"
        "    rate_limit: {unit: second, requests_per_unit: 10}\n"
        "  - key: remote_address\n"
        "    value: 50.0.0.5\n"
        "    rate_limit: {unit: second, requests_per_unit: 0}\n"
        "  - key: path\n"
        "    value: /login\n"
        "    rate_limit: {unit: minute, requests_per_unit: 4}\n"};

    expect(
        y, 1,
        "[{\"name\": \"edge.remote_address_50.0.0.5\", \"match\": "
        "{\"domain\": \"edge\", \"descriptor\": [{\"key\": "
        "\"remote_address\", \"value\": \"50.0.0.5\"}]}, \"key\": "
        "[\"descriptor.remote_address\"], \"limits\": " LIM(
            1,
            "1s") ","
                  " \"overrides\": [{\"key\": {\"descriptor.remote_address\": "
                  "\"50.0.0.5\"}, \"deny\": {\"status\": 429}}]},"
                  "{\"name\": \"edge.path_-login\", \"match\": {\"domain\": "
                  "\"edge\", \"descriptor\": [{\"key\": \"path\", \"value\": "
                  "\"/login\"}]}, \"key\": [], \"limits\": " LIM(
                      4, "1m") "},"
                               "{\"name\": \"edge.remote_address\", \"match\": "
                               "{\"domain\": "
                               "\"edge\", \"descriptor\": [{\"key\": "
                               "\"remote_address\"}]}, "
                               "\"key\": [\"descriptor.remote_address\"], "
                               "\"limits\": " LIM(10, "1s") "}]");
}
END_TEST

/* A refused input and the start of its error. */
static const struct {
    const char *yaml;
    const char *err;
} bad_cases[] = {
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"
     "      unit: second\n      requests_per_unit: 1\n"
     "      replaces:\n        - name: x\n",
     "a.yaml:7: replaces is not supported"},
    {"domain: d\ndescriptors:\n  - key: k\n    valu: v\n",
     "a.yaml:4: unknown field 'valu' in a descriptor"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, "
     "requests_per_unit: 1}\n",
     "a.yaml:4: invalid rate limit unit 'fortnight'"},
    {"domain: d\ndescriptors:\n  - key: k\n    value: v*\n",
     "a.yaml:4: wildcard values ('v*') are not supported"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second}\n",
     "a.yaml:4: rate_limit needs requests_per_unit"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
     "requests_per_unit: -1}\n",
     "a.yaml:4: requests_per_unit must be an integer"},
    {"domain: d\ndescriptors:\n  - key: k\n  - key: k\n",
     "a.yaml:4: duplicate descriptor composite key 'k' (first at a.yaml:3)"},
    {"domain: d\ndescriptors:\n  - key: k\n    descriptors: [\n",
     "a.yaml:5: malformed YAML"},
    {"domain: d\ndescriptors:\n  - &x {key: k}\n  - *x\n",
     "a.yaml:4: YAML aliases"},
    /* octal to YAML 1.1 ("010" is 8 there), so refused, not read as 10 */
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
     "requests_per_unit: 010}\n",
     "a.yaml:4: requests_per_unit must be an integer from 0 to 4294967295, in "
     "decimal without a leading zero"},
    {"domain: d\ndescriptors:\n  - key: k\n    value: \"admin\\0x\"\n",
     "a.yaml:4: a NUL byte (\\0) in a value is not supported"},
    {"descriptors: []\n", "a.yaml:1: config file cannot have empty domain"},
    {"domain: d\n---\ndomain: e\n", "a.yaml:3: a second YAML document"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, "
     "unit: second}\n",
     "a.yaml:4: should not specify rate limit unit when unlimited"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
     "requests_per_unit: 0}\n",
     "a.yaml:3: requests_per_unit 0 needs an entry with a value"},
    {"domain: d\ndescriptors:\n  - key: ''\n",
     "a.yaml:3: descriptor has empty key"},
    {"domain: \"\"\n", "a.yaml:1: config file cannot have empty domain"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: 5\n",
     "a.yaml:4: rate_limit must be a mapping"},
    {"domain: d\ndescriptors:\n  - key: k\n    shadow_mode: maybe\n",
     "a.yaml:4: shadow_mode must be true or false"},
};

START_TEST(test_refused)
{
    const char *y[] = {bad_cases[_i].yaml};
    char err[512] = "";
    char *out = convert(y, 1, err, sizeof(err));

    ck_assert_msg(out == NULL, "converted: %s", out ? out : "");
    ck_assert_msg(strncmp(err, bad_cases[_i].err, strlen(bad_cases[_i].err)) ==
                      0,
                  "case %d: %s", _i, err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("convert");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_nested_and_specific_first);
    tcase_add_test(tc, test_units_shadow_and_files);
    tcase_add_test(tc, test_deny_all_and_names);
    tcase_add_test(tc, test_unlimited_allow_list);
    tcase_add_loop_test(tc, test_refused, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
