#ifndef RL_UTIL_H
#define RL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define RL_OK 0
#define RL_ERR -1

/* Wall clock in milliseconds since the epoch. Any thread. */
int64_t rl_now_ms(void);

/* Monotonic clock in microseconds. Any thread. */
int64_t rl_mono_us(void);

/* Parses a duration such as "250ms", "1s", "10s", "2m", "5m", "1h", "1d"
 * into milliseconds (> 0). Returns RL_OK or RL_ERR. Pure. */
int rl_duration_parse(const char *s, int64_t *ms);

/* Writes a wait of ms milliseconds in words, never shorter than the wait:
 * ms rounded up to whole seconds (at least 1), then under 60 s "N
 * seconds" ("1 second"), under 1 h whole minutes rounded up, under 1 day
 * whole hours rounded up, else whole days rounded up ("61 s" -> "2
 * minutes", "3600 s" -> "1 hour"). Pure, any thread. */
void rl_human_duration_ms(int64_t ms, char *buf, size_t len);

/* The value of hex digit c (0-9, a-f, A-F), or -1: no sign, no "0x".
 * Pure, any thread. */
static inline int rl_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Fills buf with a random 32-hex-digit id (plus NUL: len >= 33). */
void rl_random_id(char *buf, size_t len);

/* Constant-time comparison of two byte strings of the given lengths. */
int rl_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Overwrites len bytes at p with zeros in a way the compiler keeps
 * (for secrets about to be freed). */
void rl_wipe(void *p, size_t len);

/* Lower-case hex SHA-256 of data into out (65 bytes with NUL). */
void rl_sha256_hex(const void *data, size_t len, char out[65]);

#endif
