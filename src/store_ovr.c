/* The admin overrides op (store.h): one hash "<prefix>:{overrides}"
 * (field "<policy>\n<canonical key JSON>", value the override's JSON)
 * and its version counter "<prefix>:{overrides}:v". Both keys share the
 * hash tag, so a cluster keeps them in one slot and one script changes
 * them together. Writes drop entries whose expires_at has passed. A
 * missing counter starts at the time in microseconds (seconds * 10^6),
 * so one that Redis lost with its data (no persistence, a flush, a
 * failover to a replica behind) never repeats a version a worker holds.
 *
 * Redis: the version poll is a plain GET; load, put and delete are one
 * EVAL of the script below (rare admin traffic: no SHA caching). The
 * memory store: a process-wide table under one mutex, never touched by
 * a decision (workers read their own snapshots). */
#include "store_ovr.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"

static const char ovr_script[] =
    "local h, v, op = KEYS[1], KEYS[2], ARGV[1]\n"
    "if op == 'load' then\n"
    "  return {tonumber(redis.call('GET', v) or '0'),"
    " redis.call('HVALS', h)}\n"
    "end\n"
    "local now = tonumber(ARGV[3])\n"
    "local all = redis.call('HGETALL', h)\n"
    "for i = 1, #all, 2 do\n"
    "  local ok, o = pcall(cjson.decode, all[i + 1])\n"
    "  if ok and type(o) == 'table' and type(o.expires_at) == 'number'\n"
    "     and o.expires_at > 0 and o.expires_at <= now then\n"
    "    redis.call('HDEL', h, all[i])\n"
    "  end\n"
    "end\n"
    "local found = 1\n"
    "if op == 'put' then\n"
    "  redis.call('HSET', h, ARGV[2], ARGV[4])\n"
    "else\n"
    "  found = redis.call('HDEL', h, ARGV[2])\n"
    "end\n"
    "redis.call('SET', v, ARGV[3] .. '000000', 'NX')\n"
    "return {redis.call('INCR', v), found}\n";

size_t rl_store_ovr_key(const char *prefix, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s:{overrides}", prefix);

    return n < 0 ? 0 : (size_t)n;
}

void rl_store_ovr_fail(rl_store_ovr_cb *cb, void *arg, const char *error)
{
    rl_store_ovr_result_t res;

    memset(&res, 0, sizeof(res));
    res.status = RL_ERR;
    res.error = error;
    cb(arg, &res);
}

/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

typedef struct ovr_call {
    rl_store_ovr_kind_t kind;
    rl_store_ovr_cb *cb;
    void *arg;
} ovr_call_t;

/* An integer reply or a number in a bulk string (GET); -1 otherwise. */
static int64_t ovr_int(const redisReply *r)
{
    if (r == NULL) {
        return -1;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    if (r->type == REDIS_REPLY_NIL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING) {
        return strtoll(r->str, NULL, 10);
    }
    return -1;
}

/* Decodes the reply of a load (version, values) into res; values is the
 * caller's array of r's strings. RL_OK or RL_ERR. */
static int ovr_load_reply(const redisReply *r, rl_store_ovr_result_t *res,
                          const char ***values)
{
    const redisReply *vals;
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        ovr_int(r->element[0]) < 0 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        return RL_ERR;
    }
    vals = r->element[1];
    *values = calloc(vals->elements + 1, sizeof(**values));
    if (*values == NULL) {
        return RL_ERR;
    }
    for (i = 0; i < vals->elements; i++) {
        if (vals->element[i]->type != REDIS_REPLY_STRING) {
            return RL_ERR;
        }
        (*values)[i] = vals->element[i]->str;
    }
    res->version = (uint64_t)ovr_int(r->element[0]);
    res->n = (int)vals->elements;
    res->values = *values;
    return RL_OK;
}

/* The connection answered an overrides command: decodes it for the
 * caller. The reply stays the connection's. */
static void ovr_reply(void *arg, redisReply *r, const char *err)
{
    ovr_call_t call = *(ovr_call_t *)arg;
    rl_store_ovr_result_t res;
    const char **values = NULL;
    int st = RL_ERR;

    free(arg);
    memset(&res, 0, sizeof(res));
    if (r == NULL) {
        rl_store_ovr_fail(call.cb, call.arg, err != NULL ? err : "store_error");
        return;
    }
    if (call.kind == RL_STORE_OVR_VERSION && ovr_int(r) >= 0) {
        res.version = (uint64_t)ovr_int(r);
        st = RL_OK;
    } else if (call.kind == RL_STORE_OVR_LOAD) {
        st = ovr_load_reply(r, &res, &values);
    } else if (call.kind != RL_STORE_OVR_VERSION &&
               r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               ovr_int(r->element[0]) >= 0) {
        res.version = (uint64_t)ovr_int(r->element[0]);
        res.found = ovr_int(r->element[1]) > 0;
        st = RL_OK;
    }
    if (st != RL_OK) {
        free(values);
        rl_store_ovr_fail(call.cb, call.arg, "bad_reply");
        return;
    }
    res.status = RL_OK;
    call.cb(call.arg, &res);
    free(values);
}

void rl_store_ovr_redis(rl_redis_conn_t *c, const rl_store_ovr_op_t *op,
                        rl_store_ovr_cb *cb, void *arg)
{
    static const char *const words[] = {"", "load", "put", "delete"};
    char hkey[256];
    char vkey[260];
    char now[24];
    const char *argv[9];
    size_t argvlen[9];
    ovr_call_t *call = malloc(sizeof(*call));
    int argc = 0;

    if (call == NULL) {
        rl_store_ovr_fail(cb, arg, "out_of_memory");
        return;
    }
    call->kind = op->kind;
    call->cb = cb;
    call->arg = arg;
    rl_store_ovr_key(op->prefix, hkey, sizeof(hkey));
    snprintf(vkey, sizeof(vkey), "%s:v", hkey);
    snprintf(now, sizeof(now), "%lld", (long long)op->now_s);
    if (op->kind == RL_STORE_OVR_VERSION) {
        argv[argc++] = "GET";
        argv[argc++] = vkey;
    } else {
        argv[argc++] = "EVAL";
        argv[argc++] = ovr_script;
        argv[argc++] = "2";
        argv[argc++] = hkey;
        argv[argc++] = vkey;
        argv[argc++] = words[op->kind];
        argv[argc++] = op->field != NULL ? op->field : "";
        argv[argc++] = now;
        argv[argc++] = op->value != NULL ? op->value : "";
    }
    for (int i = 0; i < argc; i++) {
        argvlen[i] = strlen(argv[i]);
    }
    if (op->field != NULL && argc > 6) {
        argvlen[6] = op->field_len;
    }
    if (op->value != NULL && argc > 8) {
        argvlen[8] = op->value_len;
    }
    rl_redis_conn_command(c, argc, argv, argvlen, ovr_reply, call);
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */
/* ------------------------------------------------------------------ */

typedef struct mem_ovr {
    char *field;
    size_t field_len;
    char *value;
    int64_t expires_at;
} mem_ovr_t;

/* The process-wide table: entries in insertion order. */
static struct {
    pthread_mutex_t lock;
    mem_ovr_t *items;
    int n;
    int cap;
    uint64_t version;
} mem_tab = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

/* Removes entry i, keeping the order. Lock held. */
static void mem_ovr_remove(int i)
{
    free(mem_tab.items[i].field);
    free(mem_tab.items[i].value);
    memmove(&mem_tab.items[i], &mem_tab.items[i + 1],
            (size_t)(mem_tab.n - i - 1) * sizeof(mem_tab.items[0]));
    mem_tab.n--;
    if (mem_tab.n == 0) {
        free(mem_tab.items);
        mem_tab.items = NULL;
        mem_tab.cap = 0;
    }
}

/* The index of field, or -1. Lock held. */
static int mem_ovr_index(const char *field, size_t len)
{
    int i;

    for (i = 0; i < mem_tab.n; i++) {
        if (mem_tab.items[i].field_len == len &&
            memcmp(mem_tab.items[i].field, field, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* Sets field to value (replacing it in place). RL_OK or RL_ERR. Lock held. */
static int mem_ovr_put(const rl_store_ovr_op_t *op)
{
    int i = mem_ovr_index(op->field, op->field_len);
    char *value = malloc(op->value_len + 1);

    if (value == NULL) {
        return RL_ERR;
    }
    memcpy(value, op->value, op->value_len);
    value[op->value_len] = '\0';
    if (i < 0) {
        if (mem_tab.n == mem_tab.cap) {
            int cap = mem_tab.cap > 0 ? mem_tab.cap * 2 : 8;
            mem_ovr_t *items =
                realloc(mem_tab.items, (size_t)cap * sizeof(*items));
            if (items == NULL) {
                free(value);
                return RL_ERR;
            }
            mem_tab.items = items;
            mem_tab.cap = cap;
        }
        i = mem_tab.n;
        mem_tab.items[i].field = malloc(op->field_len + 1);
        if (mem_tab.items[i].field == NULL) {
            free(value);
            return RL_ERR;
        }
        memcpy(mem_tab.items[i].field, op->field, op->field_len);
        mem_tab.items[i].field_len = op->field_len;
        mem_tab.n++;
    } else {
        free(mem_tab.items[i].value);
    }
    mem_tab.items[i].value = value;
    mem_tab.items[i].expires_at = op->expires_at;
    return RL_OK;
}

/* Copies every value for a load (NULL on no memory). Lock held. */
static char **mem_ovr_copy(void)
{
    char **values = calloc((size_t)mem_tab.n + 1, sizeof(*values));
    int i;

    for (i = 0; values != NULL && i < mem_tab.n; i++) {
        values[i] = strdup(mem_tab.items[i].value);
        if (values[i] == NULL) {
            while (i-- > 0) {
                free(values[i]);
            }
            free(values);
            return NULL;
        }
    }
    return values;
}

void rl_store_ovr_mem(rl_store_t *s, const rl_store_ovr_op_t *op,
                      rl_store_ovr_cb *cb, void *arg)
{
    rl_store_ovr_result_t res;
    char **values = NULL;
    int i, st = RL_OK;

    (void)s;
    memset(&res, 0, sizeof(res));
    pthread_mutex_lock(&mem_tab.lock);
    if (op->kind == RL_STORE_OVR_LOAD) {
        values = mem_ovr_copy();
        st = values != NULL ? RL_OK : RL_ERR;
        res.n = mem_tab.n;
    } else if (op->kind != RL_STORE_OVR_VERSION) {
        for (i = mem_tab.n - 1; i >= 0; i--) {
            if (mem_tab.items[i].expires_at > 0 &&
                mem_tab.items[i].expires_at <= op->now_s) {
                mem_ovr_remove(i);
            }
        }
        i = mem_ovr_index(op->field, op->field_len);
        res.found = i >= 0;
        if (op->kind == RL_STORE_OVR_PUT) {
            st = mem_ovr_put(op);
        } else if (i >= 0) {
            mem_ovr_remove(i);
        }
        mem_tab.version++;
    }
    res.version = mem_tab.version;
    pthread_mutex_unlock(&mem_tab.lock);
    if (st != RL_OK) {
        rl_store_ovr_fail(cb, arg, "out_of_memory");
        return;
    }
    res.values = (const char *const *)values;
    cb(arg, &res);
    for (i = 0; values != NULL && i < res.n; i++) {
        free(values[i]);
    }
    free(values);
}
