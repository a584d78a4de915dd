/* Authentication of callers (hmac, bearer) and tenants (hmac), and the
 * per-address count of failed attempts. See auth.h for the scheme. */
#include "auth.h"

/* The SHA-256 functions below are deprecated by OpenSSL 3.0 in favour of
 * EVP, but EVP allocates on every digest and MAC initialisation (1 and 5
 * mallocs), and this runs for every authenticated request. The low-level
 * context lives on the stack: no allocation, no shared state. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "util.h"

#define AUTH_SIG_PREFIX_LEN (sizeof(RL_AUTH_SIG_PREFIX) - 1)
#define AUTH_TS_DIGITS_MAX 15
#define AUTH_FAIL_SETS 1024 /* power of two */
#define AUTH_FAIL_WAYS 8    /* addresses per set */
#define AUTH_BLOCK 64       /* SHA-256 block size, for HMAC */

/* The failures of one source address (its IPv4 address, or its IPv6 /64)
 * in a fixed window. len 0: a free entry. */
typedef struct auth_bucket {
    unsigned char addr[8];
    unsigned char len; /* 4 (IPv4) or 8 (IPv6 /64) */
    uint32_t failures;
    int64_t window_start_ms;
} auth_bucket_t;

/* AUTH_FAIL_SETS x AUTH_FAIL_WAYS addresses (8,192, 192 KB a worker):
 * an address is looked up by its own bytes, so one that never failed is
 * never refused, however many others did. */
typedef struct auth_fail_table {
    uint64_t seed; /* random: an attacker cannot aim at a set */
    auth_bucket_t sets[AUTH_FAIL_SETS][AUTH_FAIL_WAYS];
} auth_fail_table_t;

static _Thread_local auth_fail_table_t *tl_fails;

void rl_auth_thread_cleanup(void)
{
    free(tl_fails);
    tl_fails = NULL;
}

/* ---------------------------------------------------------------------
 * SHA-256 and HMAC-SHA256 (RFC 2104), on the stack
 * ------------------------------------------------------------------- */

/* Writes the lower-case hex of n bytes of md into out (2n chars, no NUL). */
static void auth_hex(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[i * 2] = hex[md[i] >> 4];
        out[i * 2 + 1] = hex[md[i] & 15];
    }
}

/* Lower-case hex SHA-256 of data into out (64 chars + NUL). */
static void auth_sha256_hex(const void *data, size_t len, char out[65])
{
    SHA256_CTX c;
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(md, &c);
    auth_hex(md, sizeof(md), out);
    out[64] = '\0';
}

/* Starts an HMAC: inner has absorbed key^ipad, outer key^opad. The key
 * material on the stack is wiped before returning. */
static void auth_hmac_init(SHA256_CTX *inner, SHA256_CTX *outer,
                           const unsigned char *key, size_t key_len)
{
    unsigned char k[AUTH_BLOCK], pad[AUTH_BLOCK];
    size_t i;

    memset(k, 0, sizeof(k));
    if (key_len > AUTH_BLOCK) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, key, key_len);
        SHA256_Final(k, &c);
        OPENSSL_cleanse(&c, sizeof(c));
    } else {
        memcpy(k, key, key_len);
    }
    for (i = 0; i < AUTH_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    SHA256_Init(inner);
    SHA256_Update(inner, pad, AUTH_BLOCK);
    for (i = 0; i < AUTH_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    SHA256_Init(outer);
    SHA256_Update(outer, pad, AUTH_BLOCK);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
}

/* Finishes an HMAC into md (32 bytes) and wipes both states. */
static void auth_hmac_final(SHA256_CTX *inner, SHA256_CTX *outer,
                            unsigned char *md)
{
    unsigned char ih[SHA256_DIGEST_LENGTH];

    SHA256_Final(ih, inner);
    SHA256_Update(outer, ih, sizeof(ih));
    SHA256_Final(md, outer);
    OPENSSL_cleanse(ih, sizeof(ih));
    OPENSSL_cleanse(inner, sizeof(*inner));
    OPENSSL_cleanse(outer, sizeof(*outer));
}

/* Feeds s upper-cased to the hash, a few bytes at a time (no copy of s). */
static void auth_update_upper(SHA256_CTX *c, const char *s, size_t len)
{
    char buf[32];
    size_t i, n;

    while (len > 0) {
        n = len < sizeof(buf) ? len : sizeof(buf);
        for (i = 0; i < n; i++) {
            buf[i] =
                (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
        }
        SHA256_Update(c, buf, n);
        s += n;
        len -= n;
    }
}

int rl_auth_sign(const unsigned char *secret, size_t secret_len, const char *ts,
                 size_t ts_len, const char *method, size_t method_len,
                 const char *path, size_t path_len, const char *body_sha256_hex,
                 char *out)
{
    SHA256_CTX inner, outer;
    unsigned char md[SHA256_DIGEST_LENGTH];
    char body_hex[64];
    size_t i;

    for (i = 0; i < 64; i++) {
        char ch = body_sha256_hex[i];
        body_hex[i] = (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
    }
    auth_hmac_init(&inner, &outer, secret, secret_len);
    SHA256_Update(&inner, ts, ts_len);
    SHA256_Update(&inner, "\n", 1);
    auth_update_upper(&inner, method, method_len);
    SHA256_Update(&inner, "\n", 1);
    SHA256_Update(&inner, path, path_len);
    SHA256_Update(&inner, "\n", 1);
    SHA256_Update(&inner, body_hex, 64);
    auth_hmac_final(&inner, &outer, md);
    memcpy(out, RL_AUTH_SIG_PREFIX, AUTH_SIG_PREFIX_LEN);
    auth_hex(md, sizeof(md), out + AUTH_SIG_PREFIX_LEN);
    out[RL_AUTH_SIG_LEN] = '\0';
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

/* ---------------------------------------------------------------------
 * Errors, headers, timestamps
 * ------------------------------------------------------------------- */

/* Fills err; returns -1. */
static int auth_fail(rl_auth_error_t *err, rl_error_t kind, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));

static int auth_fail(rl_auth_error_t *err, rl_error_t kind, const char *fmt,
                     ...)
{
    va_list ap;

    err->kind = kind;
    err->status = rl_error_status(kind);
    err->code = rl_error_code(kind);
    err->retry_after_s = 0;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* The one value of header name among n headers: 1 with *value and *len set,
 * 0 when absent or empty, -1 when it appears more than once (two values
 * for one credential: which one a proxy saw is anyone's guess). */
static int auth_header(const rl_header_t *h, int n, const char *name,
                       const char **value, size_t *len)
{
    size_t nlen = strlen(name);
    int i, found = 0;

    *value = NULL;
    *len = 0;
    for (i = 0; i < n; i++) {
        if (h[i].name_len == nlen && strncasecmp(h[i].name, name, nlen) == 0) {
            if (found) {
                return -1;
            }
            found = 1;
            *value = h[i].value;
            *len = h[i].value_len;
        }
    }
    return found && *len > 0 ? 1 : 0;
}

/* The named headers of one scheme, read together: AUTH_002 names the
 * first missing one, AUTH_001 the first repeated one. */
static int auth_headers(const rl_header_t *h, int n, const char *const *names,
                        const char **values, size_t *lens, int count,
                        rl_auth_error_t *err)
{
    int i, rc;

    for (i = 0; i < count; i++) {
        rc = auth_header(h, n, names[i], &values[i], &lens[i]);
        if (rc < 0) {
            return auth_fail(err, RL_ERR_AUTH_INVALID,
                             "%s appears more than once", names[i]);
        }
        if (rc == 0) {
            return auth_fail(err, RL_ERR_AUTH_MISSING, "missing header %s",
                             names[i]);
        }
    }
    return 0;
}

/* 1 if s is len hex digits. */
static int auth_is_hex(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* Checks a timestamp header (unix seconds, digits only) against now_s. */
static int auth_timestamp(const char *name, const char *ts, size_t len,
                          int64_t now_s, int64_t skew, rl_auth_error_t *err)
{
    int64_t t = 0;
    size_t i;

    if (len > AUTH_TS_DIGITS_MAX) {
        return auth_fail(err, RL_ERR_AUTH_TIMESTAMP, "%s must be unix seconds",
                         name);
    }
    for (i = 0; i < len; i++) {
        if (ts[i] < '0' || ts[i] > '9') {
            return auth_fail(err, RL_ERR_AUTH_TIMESTAMP,
                             "%s must be unix seconds", name);
        }
        t = t * 10 + (ts[i] - '0');
    }
    if (t < now_s - skew || t > now_s + skew) {
        return auth_fail(
            err, RL_ERR_AUTH_TIMESTAMP,
            "timestamp expired: %s is more than %lld s from the server's clock",
            name, (long long)skew);
    }
    return 0;
}

/* Verifies sig (as sent) against the signature of the rest with secret. */
static int auth_check_sig(const rl_principal_t *p, const char *ts,
                          size_t ts_len, const char *method, size_t method_len,
                          const char *path, size_t path_len,
                          const char *body_hex, const char *sig, size_t sig_len,
                          rl_auth_error_t *err)
{
    char want[RL_AUTH_SIG_LEN + 1];
    int ok;

    rl_auth_sign(p->secret, p->secret_len, ts, ts_len, method, method_len, path,
                 path_len, body_hex, want);
    ok = rl_consttime_eq(want, RL_AUTH_SIG_LEN, sig, sig_len);
    rl_wipe(want, sizeof(want));
    if (!ok) {
        return auth_fail(err, RL_ERR_AUTH_INVALID, "invalid signature");
    }
    return 0;
}

const rl_principal_t *rl_auth_find(const rl_principal_t *list, int n,
                                   const char *id, size_t len)
{
    int lo = 0, hi = n - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *s = list[mid].id;
        size_t slen = strlen(s);
        int cmp = memcmp(s, id, slen < len ? slen : len);

        if (cmp == 0) {
            cmp = slen < len ? -1 : slen > len ? 1 : 0;
        }
        if (cmp == 0) {
            return &list[mid];
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------
 * Callers
 * ------------------------------------------------------------------- */

static const char *const caller_headers[] = {
    "X-Caller-Id", "X-Caller-Timestamp", "X-Caller-Signature"};

/* See auth.h: caller_headers and the bearer mode's one. */
const char *const rl_auth_caller_headers[] = {
    "X-Caller-Id", "X-Caller-Timestamp", "X-Caller-Signature", "Authorization",
    NULL};

/* hmac mode: X-Caller-Id, X-Caller-Timestamp, X-Caller-Signature. */
static int auth_caller_hmac(const rl_conf_auth_t *auth,
                            const rl_auth_input_t *in, int64_t now_s,
                            const rl_principal_t **caller, rl_auth_error_t *err)
{
    const char *v[3];
    size_t len[3];
    char body_hex[65];
    const rl_principal_t *p;

    if (auth_headers(in->headers, in->nheaders, caller_headers, v, len, 3,
                     err) != 0) {
        return -1;
    }
    p = rl_auth_find(auth->callers, auth->ncallers, v[0], len[0]);
    if (p == NULL) {
        return auth_fail(err, RL_ERR_AUTH_UNKNOWN, "caller not found");
    }
    if (auth_timestamp("X-Caller-Timestamp", v[1], len[1], now_s,
                       auth->max_clock_skew_s, err) != 0) {
        return -1;
    }
    auth_sha256_hex(in->body, in->body_len, body_hex);
    if (auth_check_sig(p, v[1], len[1], in->method, in->method_len, in->target,
                       in->target_len, body_hex, v[2], len[2], err) != 0) {
        return -1;
    }
    if (p->suspended) {
        return auth_fail(err, RL_ERR_AUTH_SUSPENDED, "caller suspended");
    }
    *caller = p;
    return 0;
}

/* See auth.h: the one "Authorization: Bearer KEY" reader. */
int rl_auth_bearer_key(const rl_header_t *headers, int nheaders,
                       char key_hex[65], rl_auth_error_t *err)
{
    const char *v;
    size_t len;
    int rc = auth_header(headers, nheaders, "Authorization", &v, &len);

    /* Two values: which one a proxy checked is anyone's guess. */
    if (rc < 0) {
        return auth_fail(err, RL_ERR_AUTHORIZATION_REPEATED, "%s",
                         rl_error_message(RL_ERR_AUTHORIZATION_REPEATED));
    }
    if (rc == 0) {
        return auth_fail(err, RL_ERR_AUTH_MISSING,
                         "missing header Authorization");
    }
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0) {
        return auth_fail(err, RL_ERR_AUTH_MISSING,
                         "missing header Authorization: Bearer");
    }
    v += 7;
    len -= 7;
    while (len > 0 && *v == ' ') {
        v++;
        len--;
    }
    if (len == 0) {
        return auth_fail(err, RL_ERR_AUTH_MISSING,
                         "missing header Authorization: Bearer");
    }
    auth_sha256_hex(v, len, key_hex);
    return 0;
}

/* bearer mode: "Authorization: Bearer KEY"; the conf holds SHA-256(KEY).
 * Every caller's hash is compared, so the time taken says nothing about
 * which one matched. */
static int auth_caller_bearer(const rl_conf_auth_t *auth,
                              const rl_auth_input_t *in,
                              const rl_principal_t **caller,
                              rl_auth_error_t *err)
{
    char key_hex[65];
    const rl_principal_t *match = NULL;
    int i;

    if (rl_auth_bearer_key(in->headers, in->nheaders, key_hex, err) != 0) {
        return -1;
    }
    for (i = 0; i < auth->ncallers; i++) {
        if (rl_consttime_eq(key_hex, 64, auth->callers[i].key_sha256, 64)) {
            match = &auth->callers[i];
        }
    }
    rl_wipe(key_hex, sizeof(key_hex));
    if (match == NULL) {
        return auth_fail(err, RL_ERR_AUTH_INVALID, "invalid key");
    }
    if (match->suspended) {
        return auth_fail(err, RL_ERR_AUTH_SUSPENDED, "caller suspended");
    }
    *caller = match;
    return 0;
}

int rl_auth_caller(const rl_conf_auth_t *auth, const rl_auth_input_t *in,
                   int64_t now_s, const rl_principal_t **caller,
                   rl_auth_error_t *err)
{
    *caller = NULL;
    switch (auth->mode) {
    case RL_AUTH_HMAC: return auth_caller_hmac(auth, in, now_s, caller, err);
    case RL_AUTH_BEARER: return auth_caller_bearer(auth, in, caller, err);
    case RL_AUTH_NONE: break;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Tenants
 * ------------------------------------------------------------------- */

static const char *const tenant_headers[] = {"X-Tenant-Id", "X-Timestamp",
                                             "X-Signature"};

/* The hex SHA-256 of the empty body, used when X-Content-SHA256 is absent. */
static const char empty_body_sha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

int rl_auth_tenant(const rl_conf_t *conf, const rl_request_t *req,
                   int64_t now_s, const char **tenant, rl_auth_error_t *err)
{
    const char *v[3], *body_hex = empty_body_sha256, *target = req->target, *ch;
    size_t len[3], target_len = req->target_len, ch_len;
    const rl_principal_t *p;
    int rc;

    *tenant = NULL;
    if (auth_headers(req->headers, req->nheaders, tenant_headers, v, len, 3,
                     err) != 0) {
        return -1;
    }
    rc = auth_header(req->headers, req->nheaders, "X-Content-SHA256", &ch,
                     &ch_len);
    if (rc < 0) {
        return auth_fail(err, RL_ERR_AUTH_INVALID,
                         "X-Content-SHA256 appears more than once");
    }
    if (rc > 0) {
        if (ch_len != 64 || !auth_is_hex(ch, ch_len)) {
            return auth_fail(err, RL_ERR_AUTH_INVALID,
                             "X-Content-SHA256 must be 64 hex digits");
        }
        body_hex = ch;
    }
    p = rl_auth_find(conf->tenants, conf->ntenants, v[0], len[0]);
    if (p == NULL) {
        return auth_fail(err, RL_ERR_AUTH_UNKNOWN, "tenant not found");
    }
    /* The tenant counted must be the tenant that signed. */
    if (req->tenant != NULL && (strlen(req->tenant) != len[0] ||
                                memcmp(req->tenant, v[0], len[0]) != 0)) {
        return auth_fail(err, RL_ERR_AUTH_INVALID,
                         "tenant does not match X-Tenant-Id");
    }
    if (auth_timestamp("X-Timestamp", v[1], len[1], now_s,
                       conf->auth.max_clock_skew_s, err) != 0) {
        return -1;
    }
    if (target == NULL) {
        target = req->path;
        target_len = req->path_len;
    }
    if (auth_check_sig(p, v[1], len[1], req->method, strlen(req->method),
                       target, target_len, body_hex, v[2], len[2], err) != 0) {
        return -1;
    }
    if (p->suspended) {
        return auth_fail(err, RL_ERR_AUTH_SUSPENDED, "tenant suspended");
    }
    *tenant = v[0];
    return 0;
}

/* ---------------------------------------------------------------------
 * Failed attempts per source address
 * ------------------------------------------------------------------- */

/* The calling thread's table, created on first use (NULL if no memory:
 * then nothing is counted, and nothing is refused). */
static auth_fail_table_t *auth_fail_table(void)
{
    if (tl_fails == NULL) {
        tl_fails = calloc(1, sizeof(*tl_fails));
        if (tl_fails != NULL && RAND_bytes((unsigned char *)&tl_fails->seed,
                                           sizeof(tl_fails->seed)) != 1) {
            tl_fails->seed = (uint64_t)rl_mono_us() * 0x9e3779b97f4a7c15ULL;
        }
    }
    return tl_fails;
}

/* The key of peer's address into addr: its IPv4 address (an IPv4-mapped
 * IPv6 address counts as its IPv4 address), or the /64 of IPv6. Returns
 * the key's length, 0 for other address families. */
static size_t auth_addr_key(const struct sockaddr *peer, unsigned char addr[8])
{
    const struct in6_addr *a6;

    if (peer != NULL && peer->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        return 4;
    }
    if (peer == NULL || peer->sa_family != AF_INET6) {
        return 0;
    }
    a6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(addr, a6->s6_addr + 12, 4);
        return 4;
    }
    memcpy(addr, a6->s6_addr, 8);
    return 8;
}

/* The set of the n-byte key addr, hashed with the table's seed. */
static auth_bucket_t *auth_set(auth_fail_table_t *t, const unsigned char *addr,
                               size_t n)
{
    uint64_t h = t->seed ^ 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ addr[i]) * 0x100000001b3ULL;
    }
    /* splitmix64 finaliser: every input bit reaches the set index. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return t->sets[h & (AUTH_FAIL_SETS - 1)];
}

/* The entry of peer's address: found, or (create) a new one in its set,
 * taking a free or expired entry, else the one with the fewest failures
 * (the oldest of those). NULL when not found and not created, or for
 * other address families. */
static auth_bucket_t *auth_bucket(auth_fail_table_t *t,
                                  const struct sockaddr *peer, int create,
                                  const rl_conf_auth_t *auth, int64_t now_ms)
{
    unsigned char addr[8];
    size_t n = auth_addr_key(peer, addr);
    auth_bucket_t *set, *victim;
    int i;

    if (n == 0) {
        return NULL;
    }
    set = auth_set(t, addr, n);
    for (i = 0; i < AUTH_FAIL_WAYS; i++) {
        if (set[i].len == n && memcmp(set[i].addr, addr, n) == 0) {
            return &set[i];
        }
    }
    if (!create) {
        return NULL;
    }
    victim = &set[0];
    for (i = 0; i < AUTH_FAIL_WAYS; i++) {
        auth_bucket_t *b = &set[i];
        if (b->len == 0 ||
            now_ms - b->window_start_ms >= auth->failure_window_ms) {
            victim = b;
            break;
        }
        if (b->failures < victim->failures ||
            (b->failures == victim->failures &&
             b->window_start_ms < victim->window_start_ms)) {
            victim = b;
        }
    }
    memcpy(victim->addr, addr, n);
    victim->len = (unsigned char)n;
    victim->failures = 0;
    victim->window_start_ms = now_ms;
    return victim;
}

int rl_auth_throttled(const rl_conf_auth_t *auth, const struct sockaddr *peer,
                      int64_t now_ms, int64_t *retry_after_s)
{
    auth_bucket_t *b;
    int64_t end;

    if (tl_fails == NULL) {
        return 0; /* no failure yet on this thread */
    }
    b = auth_bucket(tl_fails, peer, 0, auth, now_ms);
    if (b == NULL || b->failures < (uint64_t)auth->max_failures) {
        return 0;
    }
    end = b->window_start_ms + auth->failure_window_ms;
    if (now_ms >= end) {
        return 0;
    }
    *retry_after_s = (end - now_ms + 999) / 1000;
    return 1;
}

void rl_auth_note_failure(const rl_conf_auth_t *auth,
                          const struct sockaddr *peer, int64_t now_ms)
{
    auth_fail_table_t *t = auth_fail_table();
    auth_bucket_t *b;

    if (t == NULL || (b = auth_bucket(t, peer, 1, auth, now_ms)) == NULL) {
        return;
    }
    if (now_ms - b->window_start_ms >= auth->failure_window_ms ||
        now_ms < b->window_start_ms) {
        b->window_start_ms = now_ms;
        b->failures = 0;
    }
    if (b->failures < UINT32_MAX) {
        b->failures++;
    }
}

/* See auth.h. */
int rl_auth_caller_from(const rl_conf_auth_t *auth, const struct sockaddr *peer,
                        const rl_auth_input_t *in, int64_t now_ms,
                        const rl_principal_t **caller, rl_auth_error_t *err)
{
    int64_t retry_s;

    *caller = NULL;
    if (auth->mode == RL_AUTH_NONE) {
        return 0;
    }
    /* Guessing a secret goes no faster than max_failures per window. */
    if (rl_auth_throttled(auth, peer, now_ms, &retry_s)) {
        auth_fail(err, RL_ERR_AUTH_THROTTLED, "%s",
                  rl_error_message(RL_ERR_AUTH_THROTTLED));
        err->retry_after_s = retry_s;
        return -1;
    }
    if (rl_auth_caller(auth, in, now_ms / 1000, caller, err) == 0) {
        return 0;
    }
    if (err->status == 401) {
        rl_auth_note_failure(auth, peer, now_ms);
    }
    return -1;
}
