#ifndef RL_CONF_STORE_H
#define RL_CONF_STORE_H

#include "conf_field.h"

/* The "store" section (conf_store.c): its table, for the top level. */
extern const conf_table_t conf_store_table;

#endif
