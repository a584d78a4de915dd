/* The error table (see errors.h), expanded once into an array. */
#include "errors.h"

typedef struct error_row {
    const char *code;
    int status;
    const char *message;
} error_row_t;

static const error_row_t error_rows[RL_NERRORS] = {
#define RL_ERRORS_ROW(name, code, status, message)                             \
    [RL_ERR_##name] = {code, status, message},
    RL_ERRORS(RL_ERRORS_ROW)
#undef RL_ERRORS_ROW
};

/* The row of kind; INTERNAL's when kind is NONE or out of range. */
static const error_row_t *error_row(rl_error_t kind)
{
    if ((int)kind <= RL_ERR_NONE || kind >= RL_NERRORS) {
        kind = RL_ERR_INTERNAL;
    }
    return &error_rows[kind];
}

const char *rl_error_code(rl_error_t kind)
{
    return error_row(kind)->code;
}

int rl_error_status(rl_error_t kind)
{
    return error_row(kind)->status;
}

const char *rl_error_message(rl_error_t kind)
{
    return error_row(kind)->message;
}
