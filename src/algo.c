/* The algorithm table (see algo.h): built from RL_ALGO_ROWS, indexed by
 * rl_algo_t, read through lookups that refuse an out-of-range value. */
#include "algo.h"

#include <string.h>

#include "algo_mem.h"

static const rl_algo_info_t algo_rows[] = {
#define RL_ALGO_ROW(tag, word, letter, script, burst, mem)                     \
    {RL_ALGO_##tag, word, letter, script, burst, mem},
    RL_ALGO_ROWS(RL_ALGO_ROW)
#undef RL_ALGO_ROW
};

/* The row of a, or NULL if a is out of range. Static result. */
const rl_algo_info_t *rl_algo_get(rl_algo_t a)
{
    if ((unsigned)a >= sizeof(algo_rows) / sizeof(algo_rows[0])) {
        return NULL;
    }
    return &algo_rows[a];
}

/* The row called name, or NULL. Static result. */
const rl_algo_info_t *rl_algo_by_name(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(algo_rows) / sizeof(algo_rows[0]); i++) {
        if (strcmp(algo_rows[i].name, name) == 0) {
            return &algo_rows[i];
        }
    }
    return NULL;
}

/* The config word of a, or NULL if a is out of range. Static result. */
const char *rl_algo_name(rl_algo_t a)
{
    const rl_algo_info_t *info = rl_algo_get(a);

    return info != NULL ? info->name : NULL;
}
