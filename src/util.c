/* Small helpers shared by every module: clocks, durations, ids, hashing. */
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

int64_t rl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Unit suffixes and their size in milliseconds; longest suffix first so
 * "ms" wins over "m". */
static const struct {
    const char *suffix;
    int64_t ms;
} duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

int rl_duration_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int64_t n = 0;
    size_t i;

    if (s == NULL || !isdigit((unsigned char)*p)) {
        return RL_ERR;
    }
    while (isdigit((unsigned char)*p)) {
        if (n > (INT64_MAX / 10) - 10) {
            return RL_ERR;
        }
        n = n * 10 + (*p - '0');
        p++;
    }
    if (n <= 0) {
        return RL_ERR;
    }
    for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
        if (strcmp(p, duration_units[i].suffix) == 0) {
            /* Cap at 10 years: anything longer is a typo, and the cap keeps
             * every later sum of times far from overflow. */
            if (n > (int64_t)315360000000LL / duration_units[i].ms) {
                return RL_ERR;
            }
            *ms = n * duration_units[i].ms;
            return RL_OK;
        }
    }
    return RL_ERR;
}

void rl_human_duration_ms(int64_t ms, char *buf, size_t len)
{
    /* Largest unit first; a wait of at least one unit is told in it. */
    static const struct {
        const char *name;
        int64_t s;
    } units[] = {{"day", 86400}, {"hour", 3600}, {"minute", 60}, {"second", 1}};
    const size_t nunits = sizeof(units) / sizeof(units[0]);
    int64_t s = ms <= 0 ? 1 : ms / 1000 + (ms % 1000 != 0);
    int64_t n;
    size_t i = 0;

    while (i + 1 < nunits && s < units[i].s) {
        i++;
    }
    /* Rounded up: a client that waits that long is admitted. */
    n = s / units[i].s + (s % units[i].s != 0);
    snprintf(buf, len, "%lld %s%s", (long long)n, units[i].name,
             n == 1 ? "" : "s");
}

void rl_random_id(char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t i;

    if (len < 33) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* Ids are for tracing, not secrets: fall back to the clock. */
        int64_t t = rl_mono_us();
        for (i = 0; i < sizeof(raw); i++) {
            raw[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
        }
    }
    for (i = 0; i < sizeof(raw); i++) {
        buf[i * 2] = hex[raw[i] >> 4];
        buf[i * 2 + 1] = hex[raw[i] & 15];
    }
    buf[32] = '\0';
}

int rl_consttime_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void rl_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0) {
        OPENSSL_cleanse(p, len);
    }
}

void rl_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    unsigned int i;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (i = 0; i < 32; i++) {
        out[i * 2] = hex[md[i] >> 4];
        out[i * 2 + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}
