/* Reference-counted configurations and per-thread pins (see confref.h). */
#include "confref.h"

#include <stdlib.h>

struct rl_confref {
    rl_conf_t *conf;
    int refs; /* atomic: one per holding thread */
};

/* One conf a thread holds: the current one first, then retired ones. */
typedef struct conf_hold {
    rl_confref_t *ref;
    long pins; /* this thread's in-flight operations on it */
    struct conf_hold *next;
} conf_hold_t;

static _Thread_local conf_hold_t *holds;

rl_confref_t *rl_confref_new(rl_conf_t *conf, int refs)
{
    rl_confref_t *r = malloc(sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->conf = conf;
    r->refs = refs;
    return r;
}

rl_conf_t *rl_confref_conf(const rl_confref_t *r)
{
    return r->conf;
}

void rl_confref_release(rl_confref_t *r)
{
    if (r == NULL) {
        return;
    }
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        rl_conf_free(r->conf);
        free(r);
    }
}

/* Unlinks h (whose predecessor is prev, NULL for the head), releases
 * its reference and frees it. */
static void hold_drop(conf_hold_t *prev, conf_hold_t *h)
{
    if (prev != NULL) {
        prev->next = h->next;
    } else {
        holds = h->next;
    }
    rl_confref_release(h->ref);
    free(h);
}

int rl_confref_adopt(rl_confref_t *r)
{
    conf_hold_t *h = malloc(sizeof(*h));
    conf_hold_t *old = holds;

    if (h == NULL) {
        rl_confref_release(r);
        return -1;
    }
    h->ref = r;
    h->pins = 0;
    h->next = old;
    holds = h;
    if (old != NULL && old->pins == 0) {
        hold_drop(h, old);
    }
    return 0;
}

/* The hold of conf on this thread and its predecessor; NULL if none. */
static conf_hold_t *hold_find(const rl_conf_t *conf, conf_hold_t **prev)
{
    conf_hold_t *p = NULL;
    conf_hold_t *h;

    for (h = holds; h != NULL; p = h, h = h->next) {
        if (h->ref->conf == conf) {
            *prev = p;
            return h;
        }
    }
    return NULL;
}

void rl_conf_pin(const rl_conf_t *conf)
{
    conf_hold_t *prev;
    conf_hold_t *h = hold_find(conf, &prev);

    if (h != NULL) {
        h->pins++;
    }
}

void rl_conf_unpin(const rl_conf_t *conf)
{
    conf_hold_t *prev;
    conf_hold_t *h = hold_find(conf, &prev);

    if (h == NULL) {
        return;
    }
    h->pins--;
    if (h != holds && h->pins <= 0) {
        hold_drop(prev, h);
    }
}

int rl_confref_retired(void)
{
    conf_hold_t *h;
    int n = 0;

    for (h = holds != NULL ? holds->next : NULL; h != NULL; h = h->next) {
        n++;
    }
    return n;
}

void rl_confref_thread_cleanup(void)
{
    while (holds != NULL) {
        hold_drop(NULL, holds);
    }
}
