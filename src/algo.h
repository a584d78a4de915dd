#ifndef RL_ALGO_H
#define RL_ALGO_H

#include <stdint.h>

/* The rate-limit algorithms: one row each, the only list of them on the
 * C side. A row is
 *   X(TAG, config word, key suffix letter, script id, takes burst,
 *     memory-store function)
 * TAG names the enum value RL_ALGO_<TAG>; the config word is what
 * "algorithm" takes and what /v1/policies prints; the letter starts the
 * limit's Redis key suffix (conf.h); the script id is the number
 * lua/decide.lua dispatches on (its `algos` table, one Lua row per
 * algorithm: the wire protocol of store.h); "takes burst" says whether
 * "burst" applies; the function evaluates one limit for the memory store
 * (algo_mem.h). Adding an algorithm: one row here, its lua/NAME.lua (in
 * Makefile.am's RL_LUA_FILES) and one row in decide.lua's `algos`. */
#define RL_ALGO_ROWS(X)                                                        \
    X(GCRA, "gcra", 'g', 0, 1, rl_algo_mem_gcra)                               \
    X(FIXED_WINDOW, "fixed_window", 'f', 1, 0, rl_algo_mem_fixed_window)       \
    X(SLIDING_WINDOW, "sliding_window", 's', 2, 0, rl_algo_mem_sliding_window)

typedef enum {
#define RL_ALGO_ENUM(tag, word, letter, script, burst, mem) RL_ALGO_##tag,
    RL_ALGO_ROWS(RL_ALGO_ENUM)
#undef RL_ALGO_ENUM
        RL_ALGO_COUNT /* not an algorithm: the number of rows */
} rl_algo_t;

struct rl_limit;
struct rl_limit_state;
struct rl_algo_eval;

/* Evaluates one limit on its state for the memory store (algo_mem.h). */
typedef void rl_algo_mem_fn(const struct rl_limit *l,
                            const struct rl_limit_state *st, int64_t now_ms,
                            int64_t cost, struct rl_algo_eval *e);

typedef struct rl_algo_info {
    rl_algo_t algo;
    const char *name; /* config word: "gcra" */
    char letter;      /* key suffix letter: 'g' */
    int script_id;    /* the number decide.lua dispatches on */
    int has_burst;    /* "burst" applies */
    rl_algo_mem_fn *mem;
} rl_algo_info_t;

/* The row of algorithm a (static), or NULL when a is not an algorithm.
 * Pure; any thread. */
const rl_algo_info_t *rl_algo_get(rl_algo_t a);

/* The row whose config word is name (static), or NULL. Pure; any thread. */
const rl_algo_info_t *rl_algo_by_name(const char *name);

/* The config word of a (static), or NULL when a is not an algorithm.
 * Pure; any thread. */
const char *rl_algo_name(rl_algo_t a);

#endif
