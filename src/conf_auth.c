/* The "auth" and "tenants" sections of the configuration: callers of the
 * API and tenants, each a principal with an id and a secret (hmac) or a
 * key hash (bearer); secrets come from the file itself, a secret file or
 * the environment. Main thread only. */
#include "conf_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------------
 * Principals
 *
 * A principal (a caller of the API, or a tenant) is read into a
 * conf_principal_src_t first, so that its secret can come from exactly one
 * of "secret", "secret_file" and "secret_env", then moved into an
 * rl_principal_t. No error message ever holds a secret's value.
 * ---------------------------------------------------------------------- */

#define CONF_PRINCIPAL_ID_MAX 128
#define CONF_PRINCIPALS_MAX 100000
#define CONF_SECRET_MIN 16
#define CONF_SECRET_MAX 4096
#define CONF_PROTECT_MAX 16

typedef struct conf_principal_src {
    char *id;
    char *secret;
    char *secret_file;
    char *secret_env;
    char *key_sha256;
    int suspended;
} conf_principal_src_t;

static const conf_range_t range_skew = {1, 86400};
static const conf_range_t range_failures = {1, 1000000};

static const conf_enum_item_t status_items[] = {
    {"active", 0},
    {"suspended", 1},
};
static const conf_enum_t enum_status = {status_items, CONF_NELEM(status_items)};

static const conf_enum_item_t auth_mode_items[] = {
    {"none", RL_AUTH_NONE},
    {"hmac", RL_AUTH_HMAC},
    {"bearer", RL_AUTH_BEARER},
};
static const conf_enum_t enum_auth_mode = {auth_mode_items,
                                           CONF_NELEM(auth_mode_items)};

/* Frees n principals and the array (secrets wiped first). */
static void conf_free_principals(rl_principal_t *list, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(list[i].id);
        if (list[i].secret != NULL) {
            rl_wipe(list[i].secret, list[i].secret_len);
            free(list[i].secret);
        }
    }
    free(list);
}

/* "id" of a principal: 1-128 visible ASCII characters (it travels in
 * X-Caller-Id and X-Tenant-Id headers). */
static int conf_principal_id(conf_ctx_t *c, const char *path, json_t *v,
                             void *dst, const void *arg)
{
    const char *s;
    size_t i, n;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    n = json_string_length(v);
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            break;
        }
    }
    if (n == 0 || n > CONF_PRINCIPAL_ID_MAX || i < n) {
        return conf_fail(c, path, "must be 1 to %d visible ASCII characters",
                         CONF_PRINCIPAL_ID_MAX);
    }
    return conf_set_str(c, path, dst, s);
}

static const conf_field_t principal_fields[] = {
    {"id", conf_principal_id, offsetof(conf_principal_src_t, id), 1, NULL, NULL,
     conf_free_str},
    {"secret", conf_string, offsetof(conf_principal_src_t, secret), 0, NULL,
     NULL, conf_free_secret},
    {"secret_file", conf_string, offsetof(conf_principal_src_t, secret_file), 0,
     NULL, NULL, conf_free_str},
    {"secret_env", conf_string, offsetof(conf_principal_src_t, secret_env), 0,
     NULL, NULL, conf_free_str},
    {"key_sha256", conf_string, offsetof(conf_principal_src_t, key_sha256), 0,
     NULL, NULL, conf_free_str},
    {"status", conf_enum, offsetof(conf_principal_src_t, suspended), 0,
     &enum_status, NULL, NULL},
};
static const conf_table_t principal_table = {
    principal_fields, CONF_NELEM(principal_fields), NULL};

/* Reads the secret file at fname into a new *out / *len, without its
 * final line break. */
static int conf_read_secret_file(conf_ctx_t *c, const char *path,
                                 const char *fname, unsigned char **out,
                                 size_t *len)
{
    unsigned char buf[CONF_SECRET_MAX + 1];
    FILE *f = fopen(fname, "rb");
    size_t n;
    int rc = -1;

    if (f == NULL) {
        return conf_fail(c, path, "cannot read %s: %s", fname, strerror(errno));
    }
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        conf_fail(c, path, "cannot read %s: %s", fname, strerror(errno));
        goto done;
    }
    if (n > CONF_SECRET_MAX) {
        conf_fail(c, path, "%s is larger than %d bytes", fname,
                  CONF_SECRET_MAX);
        goto done;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    *out = malloc(n + 1);
    if (*out == NULL) {
        conf_fail(c, path, "out of memory");
        goto done;
    }
    memcpy(*out, buf, n);
    (*out)[n] = '\0';
    *len = n;
    rc = 0;

done:
    rl_wipe(buf, sizeof(buf));
    fclose(f);
    return rc;
}

/* Moves src's secret, from whichever single source it names, into p. */
static int conf_principal_secret(conf_ctx_t *c, const char *path,
                                 conf_principal_src_t *src, rl_principal_t *p)
{
    char sub[CONF_PATH_MAX];
    int sources = (src->secret != NULL) + (src->secret_file != NULL) +
                  (src->secret_env != NULL);

    if (src->key_sha256 != NULL) {
        conf_path_field(sub, sizeof(sub), path, "key_sha256");
        return conf_fail(c, sub, "only for auth mode \"bearer\"");
    }
    if (sources != 1) {
        return conf_fail(
            c, path, "needs exactly one of secret, secret_file, secret_env");
    }
    if (src->secret != NULL) {
        conf_path_field(sub, sizeof(sub), path, "secret");
        p->secret_len = strlen(src->secret);
        p->secret = (unsigned char *)src->secret;
        src->secret = NULL;
    } else if (src->secret_file != NULL) {
        conf_path_field(sub, sizeof(sub), path, "secret_file");
        if (conf_read_secret_file(c, sub, src->secret_file, &p->secret,
                                  &p->secret_len) != 0) {
            return -1;
        }
    } else {
        const char *val = getenv(src->secret_env);

        conf_path_field(sub, sizeof(sub), path, "secret_env");
        if (val == NULL || val[0] == '\0') {
            return conf_fail(c, sub,
                             "environment variable %s is not set or empty",
                             src->secret_env);
        }
        p->secret_len = strlen(val);
        p->secret = (unsigned char *)strdup(val);
        if (p->secret == NULL) {
            return conf_fail(c, sub, "out of memory");
        }
    }
    if (p->secret_len < CONF_SECRET_MIN || p->secret_len > CONF_SECRET_MAX) {
        return conf_fail(c, sub, "the secret must be %d to %d bytes long",
                         CONF_SECRET_MIN, CONF_SECRET_MAX);
    }
    return 0;
}

/* Moves src's key hash into p (bearer callers). */
static int conf_principal_key(conf_ctx_t *c, const char *path,
                              conf_principal_src_t *src, rl_principal_t *p)
{
    char sub[CONF_PATH_MAX];
    size_t i;

    if (src->secret != NULL || src->secret_file != NULL ||
        src->secret_env != NULL) {
        return conf_fail(c, path,
                         "auth mode \"bearer\" takes key_sha256, not a secret");
    }
    conf_path_field(sub, sizeof(sub), path, "key_sha256");
    if (src->key_sha256 == NULL) {
        return conf_fail(c, sub, "is required");
    }
    if (strlen(src->key_sha256) != 64 ||
        strspn(src->key_sha256, "0123456789abcdefABCDEF") != 64) {
        return conf_fail(c, sub,
                         "must be 64 hex digits (the SHA-256 of the key)");
    }
    for (i = 0; i < 64; i++) {
        char ch = src->key_sha256[i];
        p->key_sha256[i] =
            (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
    }
    p->key_sha256[64] = '\0';
    return 0;
}

/* Orders principals by id (byte order), so lookups can bisect. */
static int conf_principal_cmp(const void *a, const void *b)
{
    return strcmp(((const rl_principal_t *)a)->id,
                  ((const rl_principal_t *)b)->id);
}

/* Parses an array of principals at path into a new *out / *n, sorted by
 * id. mode is RL_AUTH_HMAC (secrets) or RL_AUTH_BEARER (key hashes). */
static int conf_principals(conf_ctx_t *c, const char *path, json_t *v,
                           rl_principal_t **out, int *n, rl_auth_mode_t mode)
{
    char sub[CONF_PATH_MAX];
    size_t i;
    int rc;

    if (!json_is_array(v) || json_array_size(v) > CONF_PRINCIPALS_MAX) {
        return conf_fail(c, path, "must be an array of at most %d entries",
                         CONF_PRINCIPALS_MAX);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        conf_principal_src_t src;
        rl_principal_t *p = &(*out)[i];

        memset(&src, 0, sizeof(src));
        (*n)++;
        conf_path_index(sub, sizeof(sub), path, i);
        rc = conf_object(c, sub, json_array_get(v, i), &principal_table, &src);
        if (rc == 0) {
            p->id = src.id;
            src.id = NULL;
            p->suspended = src.suspended;
            rc = mode == RL_AUTH_BEARER
                     ? conf_principal_key(c, sub, &src, p)
                     : conf_principal_secret(c, sub, &src, p);
        }
        conf_table_free(&principal_table, &src);
        if (rc != 0) {
            return -1;
        }
    }
    qsort(*out, (size_t)*n, sizeof(**out), conf_principal_cmp);
    for (i = 1; i < (size_t)*n; i++) {
        if (strcmp((*out)[i - 1].id, (*out)[i].id) == 0) {
            return conf_fail(c, path, "id \"%s\" appears more than once",
                             (*out)[i].id);
        }
    }
    return 0;
}

/* "auth.callers": dst is the auth section; "mode" was parsed first. */
static int conf_callers(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_auth_t *a = dst;

    if (a->mode == RL_AUTH_NONE) {
        return conf_fail(c, path, "auth mode \"none\" takes no callers");
    }
    return conf_principals(c, path, v, &a->callers, &a->ncallers, a->mode);
}

/* "auth.protect_paths": endpoints open by default (/health, /ready,
 * /metrics) that should require caller authentication too. */
static int conf_protect_paths(conf_ctx_t *c, const char *path, json_t *v,
                              void *dst, const void *arg)
{
    rl_conf_auth_t *a = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (!json_is_array(v) || json_array_size(v) > CONF_PROTECT_MAX) {
        return conf_fail(c, path, "must be an array of at most %d paths",
                         CONF_PROTECT_MAX);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    a->protect_paths = calloc(json_array_size(v), sizeof(*a->protect_paths));
    if (a->protect_paths == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);

        conf_path_index(sub, sizeof(sub), path, i);
        if (!json_is_string(item) || json_string_value(item)[0] != '/') {
            return conf_fail(c, sub, "must be a path starting with \"/\"");
        }
        /* Compared with the path alone: a query could never match. */
        if (strpbrk(json_string_value(item), "?#") != NULL) {
            return conf_fail(c, sub, "must be a path without a query");
        }
        if (conf_set_str(c, sub, &a->protect_paths[i],
                         json_string_value(item)) != 0) {
            return -1;
        }
        a->nprotect++;
    }
    return 0;
}

/* Frees auth.callers; dst is the auth section. */
static void conf_free_callers(void *dst)
{
    rl_conf_auth_t *a = dst;

    conf_free_principals(a->callers, a->ncallers);
    a->callers = NULL;
    a->ncallers = 0;
}

/* Frees auth.protect_paths; dst is the auth section. */
static void conf_free_protect_paths(void *dst)
{
    rl_conf_auth_t *a = dst;
    int i;

    for (i = 0; i < a->nprotect; i++) {
        free(a->protect_paths[i]);
    }
    free(a->protect_paths);
    a->protect_paths = NULL;
    a->nprotect = 0;
}

/* "auth" as a whole (base is conf->auth): hmac and bearer need at least
 * one caller; protect_paths needs one of them (mode none checks nobody,
 * so the paths would stay open unnoticed). */
static int conf_auth_check(conf_ctx_t *c, const char *path, json_t *v,
                           void *base)
{
    rl_conf_auth_t *a = base;
    char sub[CONF_PATH_MAX];

    if (a->mode != RL_AUTH_NONE && a->ncallers == 0) {
        conf_path_field(sub, sizeof(sub), path, "callers");
        return conf_fail(c, sub, "auth mode \"%s\" needs at least one caller",
                         a->mode == RL_AUTH_HMAC ? "hmac" : "bearer");
    }
    if (a->mode == RL_AUTH_NONE && a->nprotect > 0) {
        conf_path_field(sub, sizeof(sub), path, "protect_paths");
        return conf_fail(c, sub,
                         "only applies with auth mode \"hmac\" or \"bearer\"");
    }
    return 0;
}

/* Table order is parse order: callers need the mode. */
static const conf_field_t auth_fields[] = {
    {"mode", conf_enum, offsetof(rl_conf_auth_t, mode), 0, &enum_auth_mode,
     NULL, NULL},
    {"callers", conf_callers, 0, 0, NULL, NULL, conf_free_callers},
    {"max_clock_skew_s", conf_int64, offsetof(rl_conf_auth_t, max_clock_skew_s),
     0, &range_skew, "300", NULL},
    {"max_failures", conf_int64, offsetof(rl_conf_auth_t, max_failures), 0,
     &range_failures, "10", NULL},
    {"failure_window", conf_duration,
     offsetof(rl_conf_auth_t, failure_window_ms), 0, NULL, "\"60s\"", NULL},
    {"protect_paths", conf_protect_paths, 0, 0, NULL, NULL,
     conf_free_protect_paths},
};

const conf_table_t conf_auth_table = {auth_fields, CONF_NELEM(auth_fields),
                                      conf_auth_check};

/* "tenants": the tenants whose signatures policies with "verify_tenant"
 * check; dst is the conf. */
int conf_tenants(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                 const void *arg)
{
    rl_conf_t *conf = dst;

    return conf_principals(c, path, v, &conf->tenants, &conf->ntenants,
                           RL_AUTH_HMAC);
}

/* Frees the tenants (secrets wiped); dst is the conf. */
void conf_free_tenants(void *dst)
{
    rl_conf_t *conf = dst;

    conf_free_principals(conf->tenants, conf->ntenants);
    conf->tenants = NULL;
    conf->ntenants = 0;
}
