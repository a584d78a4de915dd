/* Helpers shared by the store implementations. */
#include "store.h"

#include <string.h>
#include "util.h"

void rl_store_fail(rl_store_cb *cb, void *arg, const char *error)
{
    rl_store_result_t res;

    memset(&res, 0, sizeof(res));
    res.status = RL_ERR;
    res.error = error;
    cb(arg, &res);
}
