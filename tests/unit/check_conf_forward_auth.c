/* Unit tests of the "forward_auth" section of the config: its defaults,
 * the values read back, and a table of bad values each with the exact
 * error a user sees. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define NOPOL ", \"policies\": []}"

/* Parses a NUL-terminated string; the conf is the caller's. */
static rl_conf_t *parse(const char *text, char *err, size_t errlen)
{
    return rl_conf_parse(text, strlen(text), err, errlen);
}

/* Without the section: the policy's status, X-Tenant-Id and X-User-Id. */
START_TEST(test_defaults)
{
    char err[512];
    rl_conf_t *conf = parse("{\"policies\": []}", err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->forward_auth.deny_status, 0);
    ck_assert_str_eq(conf->forward_auth.tenant_header, "x-tenant-id");
    ck_assert_str_eq(conf->forward_auth.user_header, "x-user-id");
    rl_conf_free(conf);
}
END_TEST

/* Every field read back; header names are stored lower-case. */
START_TEST(test_values)
{
    char err[512];
    rl_conf_t *conf = parse("{\"forward_auth\": {\"deny_status\": 403, "
                            "\"tenant_header\": \"X-Account\", "
                            "\"user_header\": \"X-Auth-User\"}" NOPOL,
                            err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_int_eq(conf->forward_auth.deny_status, 403);
    ck_assert_str_eq(conf->forward_auth.tenant_header, "x-account");
    ck_assert_str_eq(conf->forward_auth.user_header, "x-auth-user");
    rl_conf_free(conf);
}
END_TEST

static const struct {
    const char *json;
    const char *error;
} bad_rows[] = {
    {"{\"forward_auth\": [] " NOPOL, "forward_auth: must be an object"},
    {"{\"forward_auth\": {\"deny\": 403}" NOPOL,
     "forward_auth.deny: unknown field"},
    {"{\"forward_auth\": {\"deny_status\": 200}" NOPOL,
     "forward_auth.deny_status: must be an integer from 400 to 599"},
    {"{\"forward_auth\": {\"deny_status\": 600}" NOPOL,
     "forward_auth.deny_status: must be an integer from 400 to 599"},
    {"{\"forward_auth\": {\"deny_status\": \"403\"}" NOPOL,
     "forward_auth.deny_status: must be an integer from 400 to 599"},
    {"{\"forward_auth\": {\"tenant_header\": 1}" NOPOL,
     "forward_auth.tenant_header: must be a string"},
    {"{\"forward_auth\": {\"tenant_header\": \"\"}" NOPOL,
     "forward_auth.tenant_header: \"\" is not a header name"},
    {"{\"forward_auth\": {\"user_header\": \"X User\"}" NOPOL,
     "forward_auth.user_header: \"X User\" is not a header name"},
};

START_TEST(test_bad_config)
{
    char err[512];
    rl_conf_t *conf = parse(bad_rows[_i].json, err, sizeof(err));

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

/* The edges of the bad rows are accepted. */
START_TEST(test_near_misses_accepted)
{
    static const char *const good[] = {
        "{\"forward_auth\": {}" NOPOL,
        "{\"forward_auth\": {\"deny_status\": 400}" NOPOL,
        "{\"forward_auth\": {\"deny_status\": 599}" NOPOL,
        "{\"forward_auth\": {\"tenant_header\": \"x\", \"user_header\": "
        "\"X-User_1\"}" NOPOL,
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
static Suite *forward_auth_suite(void)
{
    Suite *s = suite_create("conf_forward_auth");
    TCase *tc = tcase_create("forward_auth");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values);
    tcase_add_loop_test(tc, test_bad_config, 0,
                        (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
    tcase_add_test(tc, test_near_misses_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(forward_auth_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
