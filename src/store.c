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

/* Counts the limits of every part of op; -1 for an op no store takes
 * (see store.h). Pure; any thread. */
int rl_store_op_nlimits(const rl_store_op_t *op)
{
    int n = 0;
    int i;

    if (op->nparts < 0 || op->nparts > RL_MAX_OP_PARTS ||
        (op->nparts > 0 && op->parts == NULL) || op->npenalties < 0 ||
        op->npenalties > RL_MAX_OP_PENALTIES ||
        (op->npenalties > 0 && op->penalties == NULL)) {
        return -1;
    }
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        if (part.base_key == NULL || part.limits == NULL || part.nlimits < 1 ||
            part.nlimits > RL_MAX_LIMITS) {
            return -1;
        }
        n += part.nlimits;
    }
    return n <= RL_MAX_OP_LIMITS ? n : -1;
}
