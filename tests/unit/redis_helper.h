#ifndef RL_TEST_REDIS_HELPER_H
#define RL_TEST_REDIS_HELPER_H

#include <sys/types.h>
#include <hiredis/hiredis.h>

/* A throwaway redis-server for C tests: free loopback port, temp dir, no
 * persistence, stopped by pid. The server dies with the process that
 * started it (PR_SET_PDEATHSIG), so a crashed test leaves nothing behind. */
typedef struct rl_test_redis {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[128]; /* temp dir, "" until the first start */
} rl_test_redis_t;

/* Call once from main() before the tests run: creates the root temp dir
 * every server's dir goes under, and removes it with everything in it
 * when the process exits, also after a failed test (Check ends those in
 * a forked child that skips teardown). */
void rl_test_redis_init(void);

/* A loopback port that was free a moment ago (bind port 0, read it back). */
int rl_test_free_port(void);

/* Starts redis-server on port (0: a free one; r->port after a stop: the
 * same one again) with extra arguments (NULL-terminated list, or NULL),
 * e.g. { "--requirepass", "pw", NULL }. Waits up to 5 s until it answers
 * PING. Returns 0, or -1 with nothing left running. */
int rl_test_redis_start(rl_test_redis_t *r, int port, const char *const *extra);

/* SIGTERM, then waits for the pid (SIGKILL after 5 s). Keeps port and dir
 * so rl_test_redis_start(r, r->port, ...) restarts on the same port. */
void rl_test_redis_stop(rl_test_redis_t *r);

/* Stops the server and removes its temp dir. */
void rl_test_redis_cleanup(rl_test_redis_t *r);

/* Opens a blocking hiredis connection (AUTH password if not NULL), or NULL. */
redisContext *rl_test_redis_connect(const rl_test_redis_t *r,
                                    const char *password);

/* Runs one command on a fresh blocking connection; returns the reply
 * (caller frees with freeReplyObject) or NULL. */
redisReply *rl_test_redis_cmd(const rl_test_redis_t *r, const char *password,
                              const char *fmt, ...);

#endif
