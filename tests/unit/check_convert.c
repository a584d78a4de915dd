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

/* Every converted policy sends no rate-limit headers: the Envoy in
 * front builds them (enable_x_ratelimit_headers), as it does for
 * envoyproxy/ratelimit. */
#define NOHDR ", \"headers\": \"none\""

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

    expect(y, 1,
           "[{\"name\": \"messaging.message_type_marketing.to_number\","
           " \"match\": {\"domain\": \"messaging\", \"descriptor\": ["
           "{\"key\": \"message_type\", \"value\": \"marketing\"},"
           " {\"key\": \"to_number\"}]},"
           " \"key\": [\"descriptor.to_number\"], \"limits\": " LIM(5, "1d")
               NOHDR "},"
                     "{\"name\": \"messaging.to_number_2061111111\","
                     " \"match\": {\"domain\": \"messaging\", \"descriptor\": ["
                     "{\"key\": \"to_number\", \"value\": \"2061111111\"}]},"
                     " \"key\": [], \"limits\": " LIM(1, "1s") NOHDR
           "},"
           "{\"name\": \"messaging.to_number\","
           " \"match\": {\"domain\": \"messaging\", "
           "\"descriptor\": ["
           "{\"key\": \"to_number\"}]},"
           " \"key\": [\"descriptor.to_number\"], "
           "\"limits\": " LIM(100, "1d") NOHDR "}]");
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

    expect(y, 3,
           "[{\"name\": \"a.l_x\", \"match\": {\"domain\": \"a\", "
           "\"descriptor\": [{\"key\": \"l\", \"value\": \"x\"}]}, "
           "\"key\": [], \"limits\": [], \"headers\": \"none\"},"
           "{\"name\": \"a.m\", \"match\": {\"domain\": \"a\", "
           "\"descriptor\": [{\"key\": \"m\"}]}, \"key\": [\"descriptor.m\"],"
           " \"limits\": " LIM(2, "1m") NOHDR
           "},"
           "{\"name\": \"a.h\", \"match\": {\"domain\": \"a\", "
           "\"descriptor\": [{\"key\": \"h\"}]}, \"key\": "
           "[\"descriptor.h\"],"
           " \"limits\": " LIM(3, "1h") NOHDR
           ", \"mode\": \"shadow\"},"
           "{\"name\": \"a.w\", \"match\": {\"domain\": "
           "\"a\", "
           "\"descriptor\": [{\"key\": \"w\"}]}, \"key\": "
           "[\"descriptor.w\"],"
           " \"limits\": " LIM(4, "7d") NOHDR
           "},"
           "{\"name\": \"b.mo\", \"match\": "
           "{\"domain\": \"b\", "
           "\"descriptor\": [{\"key\": \"mo\"}]}, "
           "\"key\": [\"descriptor.mo\"],"
           " \"limits\": " LIM(5, "30d") NOHDR "},"
                                               "{\"name\": \"b.y\", "
                                               "\"match\": {\"domain\": "
                                               "\"b\", "
                                               "\"descriptor\": [{\"key\": "
                                               "\"y\"}]}, \"key\": "
                                               "[\"descriptor.y\"],"
                                               " \"limits\": " LIM(6, "365d")
                                                   NOHDR "}]");
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
        "\"10.0.0.1\"}]}, \"key\": [], \"limits\": [], \"headers\": \"none\"},"
        " {\"name\": \"edge.ip\", \"match\": {\"domain\": \"edge\", "
        "\"descriptor\": [{\"key\": \"ip\"}]}, \"key\": "
        "[\"descriptor.ip\"], \"limits\": " LIM(5, "1s") NOHDR
        "},"
        " {\"name\": \"edge.user.plan\", \"match\": {\"domain\": "
        "\"edge\", \"descriptor\": [{\"key\": \"user\"}, {\"key\": "
        "\"plan\"}]}, \"key\": [], \"limits\": [], \"headers\": \"none\"}]");
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

    expect(y, 1,
           "[{\"name\": \"edge.remote_address_50.0.0.5\", \"match\": "
           "{\"domain\": \"edge\", \"descriptor\": [{\"key\": "
           "\"remote_address\", \"value\": \"50.0.0.5\"}]}, \"key\": "
           "[\"descriptor.remote_address\"], \"limits\": " LIM(1, "1s") NOHDR
           ","
           " \"overrides\": [{\"key\": {\"descriptor.remote_address\": "
           "\"50.0.0.5\"}, \"deny\": {\"status\": 429}}]},"
           "{\"name\": \"edge.path_-login\", \"match\": {\"domain\": "
           "\"edge\", \"descriptor\": [{\"key\": \"path\", \"value\": "
           "\"/login\"}]}, \"key\": [], \"limits\": " LIM(4, "1m") NOHDR
           "},"
           "{\"name\": \"edge.remote_address\", \"match\": "
           "{\"domain\": "
           "\"edge\", \"descriptor\": [{\"key\": "
           "\"remote_address\"}]}, "
           "\"key\": [\"descriptor.remote_address\"], "
           "\"limits\": " LIM(10, "1s") NOHDR "}]");
}
END_TEST

/* A file whose one descriptor k has value V. */
#define VALUE(V) "domain: d\ndescriptors:\n  - key: k\n    value: " V "\n"

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
    /* envoyproxy/ratelimit files a level's descriptors under KEY_VALUE
     * and refuses a second one with the same string */
    {"domain: d\ndescriptors:\n  - {key: a, value: x}\n  - {key: a_x}\n",
     "a.yaml:4: duplicate descriptor composite key 'a_x' (first at "
     "a.yaml:3): envoyproxy/ratelimit files a descriptor under KEY_VALUE, "
     "so key 'a_x' and key 'a' with value 'x' are one entry there"},
    {"domain: d\ndescriptors:\n  - {key: a_b, value: c}\n"
     "  - {key: a, value: b_c}\n",
     "a.yaml:4: duplicate descriptor composite key 'a_b_c' (first at "
     "a.yaml:3): envoyproxy/ratelimit files a descriptor under KEY_VALUE, "
     "so key 'a' with value 'b_c' and key 'a_b' with value 'c' are one "
     "entry there"},
    {"domain: d\ndescriptors:\n  - key: p\n    descriptors:\n"
     "      - {key: a_x}\n      - {key: a, value: x}\n",
     "a.yaml:6: duplicate descriptor composite key 'a_x' (first at "
     "a.yaml:5)"},
    /* numbers to go-yaml v2, which envoyproxy/ratelimit refuses in any
     * field ("error checking config"): floats and uint64s */
    {VALUE("1.5"), "a.yaml:4: value 1.5 is a float to envoyproxy/ratelimit's "
                   "YAML parser, which refuses the file: quote it ('1.5')"},
    {VALUE(".5"), "a.yaml:4: value .5 is a float"},
    {VALUE("1e3"), "a.yaml:4: value 1e3 is a float"},
    {VALUE("-2.5E-3"), "a.yaml:4: value -2.5E-3 is a float"},
    {VALUE("+.5"), "a.yaml:4: value +.5 is a float"},
    {VALUE("1."), "a.yaml:4: value 1. is a float"},
    {VALUE("09"), "a.yaml:4: value 09 is a float"},
    {VALUE("1_0.5"), "a.yaml:4: value 1_0.5 is a float"},
    {VALUE(".5_5"), "a.yaml:4: value .5_5 is a float"},
    {VALUE(".inf"), "a.yaml:4: value .inf is a float"},
    {VALUE("-.Inf"), "a.yaml:4: value -.Inf is a float"},
    {VALUE(".NaN"), "a.yaml:4: value .NaN is a float"},
    {VALUE("99999999999999999999"), "a.yaml:4: value 99999999999999999999 "
                                    "is a float"},
    {VALUE("+9223372036854775808"), "a.yaml:4: value +9223372036854775808 "
                                    "is a float"},
    {VALUE("-9223372036854775809"), "a.yaml:4: value -9223372036854775809 "
                                    "is a float"},
    {VALUE("9223372036854775808"), "a.yaml:4: value 9223372036854775808 is "
                                   "an integer past 2^63-1"},
    {VALUE("0xFFFFFFFFFFFFFFFF"), "a.yaml:4: value 0xFFFFFFFFFFFFFFFF is an "
                                  "integer past 2^63-1"},
    {"domain: 2.0\n", "a.yaml:1: domain 2.0 is a float"},
    {"domain: d\ndescriptors:\n  - key: 1e9\n", "a.yaml:3: key 1e9 is a float"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: 1.5, "
     "requests_per_unit: 1}\n",
     "a.yaml:4: unit 1.5 is a float"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {name: 0.1, "
     "unit: second, requests_per_unit: 1}\n",
     "a.yaml:4: name 0.1 is a float"},
    /* tags go-yaml v2 converts or decodes (!!binary is base64 there) */
    {VALUE("!!float 1"), "a.yaml:4: YAML tags other than !!str"},
    {VALUE("!!int 5"), "a.yaml:4: YAML tags other than !!str"},
    {"domain: d\ndescriptors:\n  - key: !!binary aGVsbG8=\n",
     "a.yaml:3: YAML tags other than !!str"},
    /* booleans only in go-yaml v2's spellings */
    {"domain: d\ndescriptors:\n  - key: k\n    shadow_mode: tRUE\n",
     "a.yaml:4: shadow_mode must be true or false"},
    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: yEs}\n",
     "a.yaml:4: unlimited must be true or false"},
};

/* Values that go-yaml v2 hands to envoyproxy/ratelimit as text (dates,
 * integers, words in a string field, quoted or !!str or locally tagged
 * scalars, what no number pattern matches), and that text. */
static const struct {
    const char *yaml;
    const char *value;
} text_cases[] = {
    {"2024-01-01", "2024-01-01"},
    {"2024-01-01 10:00:00", "2024-01-01 10:00:00"},
    {"010", "010"},
    {"0x1F", "0x1F"},
    {"1_000", "1_000"},
    {"-0b101", "-0b101"},
    {"9223372036854775807", "9223372036854775807"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"1e400", "1e400"},
    {"yes", "yes"},
    {"tRUE", "tRUE"},
    {"'1.5'", "1.5"},
    {"\"1e3\"", "1e3"},
    {"!!str 1.5", "1.5"},
    {"! 1.5", "1.5"},
    {"!x 1.5", "1.5"},
    {"._5", "._5"},
    {".5_", ".5_"},
    {"1.5.5", "1.5.5"},
    {"1:30", "1:30"},
    {"0x", "0x"},
    {"+", "+"},
};

/* Converts one descriptor "key: k" whose line `field: word` is set, with
 * a 1/s limit; the output parsed (the caller frees it). */
static json_t *convert_field(const char *field, const char *word)
{
    char yaml[256], err[512] = "";
    const char *y[] = {yaml};
    json_t *root;
    char *out;

    snprintf(yaml, sizeof(yaml),
             "domain: d\ndescriptors:\n  - key: k\n    %s: %s\n"
             "    rate_limit: {unit: second, requests_per_unit: 1}\n",
             field, word);
    out = convert(y, 1, err, sizeof(err));
    ck_assert_msg(out != NULL, "%s: %s: %s", field, word, err);
    root = json_loads(out, 0, NULL);
    free(out);
    return root;
}

START_TEST(test_text_values)
{
    json_t *root = convert_field("value", text_cases[_i].yaml);
    const char *got = NULL;

    ck_assert_int_eq(json_unpack(root, "{s:[{s:{s:[{s:s}]}}]}", "policies",
                                 "match", "descriptor", "value", &got),
                     0);
    ck_assert_str_eq(got, text_cases[_i].value);
    json_decref(root);
}
END_TEST

/* go-yaml v2's spellings of true, each a shadow_mode here. */
static const char *const true_words[] = {
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};

START_TEST(test_true_words)
{
    json_t *root = convert_field("shadow_mode", true_words[_i]);
    const char *mode = NULL;

    ck_assert_int_eq(
        json_unpack(root, "{s:[{s:s}]}", "policies", "mode", &mode), 0);
    ck_assert_str_eq(mode, "shadow");
    json_decref(root);
}
END_TEST

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
    tcase_add_loop_test(tc, test_text_values, 0,
                        (int)(sizeof(text_cases) / sizeof(text_cases[0])));
    tcase_add_loop_test(tc, test_true_words, 0,
                        (int)(sizeof(true_words) / sizeof(true_words[0])));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
