/* Matching a gRPC descriptor to a descriptor policy ("match": {"domain",
 * "descriptor"}) through an index built once with the policies.
 *
 * What it promises: rl_policy_find_descriptor returns exactly the policy
 * a scan of every policy in file order would (the first whose domain is
 * the request's and whose entries fit, policy_fits_descriptor), testing
 * only the policies whose first entry fits the request's first entry.
 * A converted envoyproxy/ratelimit file holds one policy per listed
 * value ahead of the general rule, so the scan cost 0.5 ms for each
 * unlisted descriptor at 20,000 values. Policies that share a first
 * entry (key with any value, then thousands of values for a second
 * key) still form one list, tested in file order.
 *
 * How: a policy can only fit a descriptor whose first entry has the
 * policy's first key and, when the policy fixes it, its first value. So
 * every descriptor policy goes into one list: (domain, key, value) for a
 * fixed first value, (domain, key, any) otherwise, each list in file
 * order. A lookup hashes the request's first entry into both lists and
 * walks them merged by file position, running the full fit test; the
 * first fit is the scan's answer, since every policy that could fit is
 * in one of the two lists.
 *
 * Ownership: the index belongs to the conf (built and freed with its
 * policies, conf_policy.c) and borrows their strings. It is read-only
 * after load: lookups take no lock and allocate nothing, on any thread. */
#include "policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

/* One list: the policies order[first .. first + count) share rep's
 * domain, first key and (fixed lists) first value. hash 0: empty slot. */
typedef struct desc_slot {
    uint64_t hash;
    int rep;   /* index of the list's first policy */
    int first; /* into order[] */
    int count;
} desc_slot_t;

struct rl_policy_desc_index {
    const rl_policy_t *policies; /* borrowed from the conf */
    desc_slot_t *slots;          /* open addressing, at most half full */
    size_t mask;                 /* nslots - 1, nslots a power of two */
    int *order; /* policy indices, grouped by list, each in file order */
};

/* What a list is looked up by: borrowed bytes, value NULL for "any". */
typedef struct desc_key {
    const char *domain;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} desc_key_t;

/* ------------------------------------------------------------------------
 * Hashing and probing
 * ---------------------------------------------------------------------- */

#define DESC_FNV_OFFSET 14695981039346656037ULL
#define DESC_FNV_PRIME 1099511628211ULL

/* FNV-1a of len bytes of s continued from h, then of len, so that
 * ("ab", "c") and ("a", "bc") hash apart. */
static uint64_t desc_fnv(uint64_t h, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * DESC_FNV_PRIME;
    }
    return (h ^ (uint64_t)len) * DESC_FNV_PRIME;
}

/* The hash of k: of (domain, key) then of the value, or a mark for any;
 * never 0, which marks an empty slot. */
static uint64_t desc_hash(const desc_key_t *k)
{
    uint64_t h = desc_fnv(DESC_FNV_OFFSET, k->domain, strlen(k->domain));

    h = desc_fnv(h, k->key, k->key_len);
    h = k->value != NULL ? desc_fnv(h, k->value, k->value_len)
                         : (h ^ 0x100000000ULL) * DESC_FNV_PRIME;
    h ^= h >> 29; /* the low bits pick the slot: fold the high ones in */
    return h != 0 ? h : 1;
}

/* 1 if the list of slot s is the one k names. */
static int desc_slot_is(const rl_policy_desc_index_t *ix, const desc_slot_t *s,
                        const desc_key_t *k)
{
    const rl_policy_t *p = &ix->policies[s->rep];
    const rl_desc_match_t *d = &p->desc[0];

    if (strcmp(p->domain, k->domain) != 0 || strlen(d->key) != k->key_len ||
        memcmp(d->key, k->key, k->key_len) != 0) {
        return 0;
    }
    if (d->value == NULL || k->value == NULL) {
        return d->value == k->value;
    }
    return strlen(d->value) == k->value_len &&
           memcmp(d->value, k->value, k->value_len) == 0;
}

/* The slot of k's list, or the empty slot where it would go (the table
 * is never full, so the probe ends). Borrowed from ix. */
static desc_slot_t *desc_probe(const rl_policy_desc_index_t *ix,
                               const desc_key_t *k, uint64_t hash)
{
    size_t i = (size_t)hash & ix->mask;

    for (;;) {
        desc_slot_t *s = &ix->slots[i];

        if (s->hash == 0 || (s->hash == hash && desc_slot_is(ix, s, k))) {
            return s;
        }
        i = (i + 1) & ix->mask;
    }
}

/* ------------------------------------------------------------------------
 * Building (at load) and freeing
 * ---------------------------------------------------------------------- */

/* 1 if p is a descriptor policy. Loaded ones all have entries
 * (conf_descriptor); one without could fit no request the index sees. */
static int desc_indexed(const rl_policy_t *p)
{
    return p->domain != NULL && p->ndesc > 0;
}

/* The list policy p goes into: the key of its first entry. */
static desc_key_t desc_key_of(const rl_policy_t *p)
{
    const rl_desc_match_t *d = &p->desc[0];
    desc_key_t k = {p->domain, d->key, strlen(d->key), d->value,
                    d->value != NULL ? strlen(d->value) : 0};

    return k;
}

/* The slot of descriptor policy i's list, claimed for it when new. */
static desc_slot_t *desc_slot_for(rl_policy_desc_index_t *ix, int i)
{
    desc_key_t k = desc_key_of(&ix->policies[i]);
    uint64_t hash = desc_hash(&k);
    desc_slot_t *s = desc_probe(ix, &k, hash);

    if (s->hash == 0) {
        s->hash = hash;
        s->rep = i;
    }
    return s;
}

/* Fills ix's lists from its n policies: counts each list, gives it its
 * range of order[], then places the policies in file order. */
static void desc_fill(rl_policy_desc_index_t *ix, int n)
{
    int off = 0;
    size_t j;
    int i;

    for (i = 0; i < n; i++) {
        if (desc_indexed(&ix->policies[i])) {
            desc_slot_for(ix, i)->count++;
        }
    }
    for (j = 0; j <= ix->mask; j++) {
        ix->slots[j].first = off;
        off += ix->slots[j].count;
        ix->slots[j].count = 0;
    }
    for (i = 0; i < n; i++) {
        if (desc_indexed(&ix->policies[i])) {
            desc_slot_t *s = desc_slot_for(ix, i);

            ix->order[s->first + s->count++] = i;
        }
    }
}

/* Builds the index of the descriptor policies among the n policies
 * (borrowed; they must outlive it) into *out (the caller's, free with
 * rl_policy_desc_free): NULL when there are none. 0, or -1 when out of
 * memory (*out NULL). */
int rl_policy_desc_build(const rl_policy_t *policies, int n,
                         rl_policy_desc_index_t **out)
{
    rl_policy_desc_index_t *ix;
    size_t nslots = 2;
    int ndesc = 0;
    int i;

    *out = NULL;
    for (i = 0; i < n; i++) {
        ndesc += desc_indexed(&policies[i]);
    }
    if (ndesc == 0) {
        return 0;
    }
    while (nslots < 2 * (size_t)ndesc) {
        nslots *= 2;
    }
    ix = calloc(1, sizeof(*ix));
    if (ix == NULL) {
        return -1;
    }
    ix->policies = policies;
    ix->mask = nslots - 1;
    ix->slots = calloc(nslots, sizeof(*ix->slots));
    ix->order = calloc((size_t)ndesc, sizeof(*ix->order));
    if (ix->slots == NULL || ix->order == NULL) {
        rl_policy_desc_free(ix);
        return -1;
    }
    desc_fill(ix, n);
    *out = ix;
    return 0;
}

/* Frees ix (not the policies it borrows); NULL is fine. */
void rl_policy_desc_free(rl_policy_desc_index_t *ix)
{
    if (ix == NULL) {
        return;
    }
    free(ix->slots);
    free(ix->order);
    free(ix);
}

/* ------------------------------------------------------------------------
 * Lookup (the hot path: no allocation, no lock)
 * ---------------------------------------------------------------------- */

/* 1 if the descriptor policy p fits the entries of req: the same keys
 * in the same order, the values where p gives one. */
static int policy_fits_descriptor(const rl_policy_t *p, const rl_request_t *req)
{
    int i;

    if (p->domain == NULL || p->ndesc != req->nheaders) {
        return 0;
    }
    for (i = 0; i < p->ndesc; i++) {
        const rl_header_t *e = &req->headers[i];
        const rl_desc_match_t *d = &p->desc[i];

        if (e->name_len != strlen(d->key) ||
            memcmp(e->name, d->key, e->name_len) != 0) {
            return 0;
        }
        if (d->value != NULL && (e->value_len != strlen(d->value) ||
                                 memcmp(e->value, d->value, e->value_len))) {
            return 0;
        }
    }
    return 1;
}

/* The list k names in ix: its policy indices into *list and their
 * number (0 when there is no such list). */
static int desc_list(const rl_policy_desc_index_t *ix, const desc_key_t *k,
                     const int **list)
{
    const desc_slot_t *s = desc_probe(ix, k, desc_hash(k));

    if (s->hash == 0) {
        *list = NULL;
        return 0;
    }
    *list = &ix->order[s->first];
    return s->count;
}

/* The first policy in file order of the fixed-value list (a, na) and the
 * any-value list (b, nb) that fits req; NULL when none does. */
static const rl_policy_t *desc_first_fit(const rl_policy_desc_index_t *ix,
                                         const int *a, int na, const int *b,
                                         int nb, const rl_request_t *req)
{
    int i = 0, j = 0;

    while (i < na || j < nb) {
        int next = (j >= nb || (i < na && a[i] < b[j])) ? a[i++] : b[j++];

        if (policy_fits_descriptor(&ix->policies[next], req)) {
            return &ix->policies[next];
        }
    }
    return NULL;
}

/* The first fitting descriptor policy in file order (borrowed from
 * conf), from the two lists of req's first entry. A request without
 * entries fits none: every descriptor policy has at least one entry
 * (conf_descriptor), as with the scan. m is zeroed and, on a fit, names
 * the policy. */
const rl_policy_t *rl_policy_find_descriptor(const struct rl_conf *conf,
                                             const char *domain,
                                             const rl_request_t *req,
                                             rl_match_t *m)
{
    const rl_policy_desc_index_t *ix = conf->desc_index;
    const rl_header_t *e = &req->headers[0];
    /* a NULL value reads as "" (length 0), as the fit test reads it */
    desc_key_t k = {domain, e->name, e->name_len,
                    e->value != NULL ? e->value : "", e->value_len};
    const int *fixed, *any;
    int nfixed, nany;

    memset(m, 0, sizeof(*m));
    if (ix == NULL || req->nheaders == 0) {
        return NULL;
    }
    nfixed = desc_list(ix, &k, &fixed);
    k.value = NULL;
    nany = desc_list(ix, &k, &any);
    m->policy = desc_first_fit(ix, fixed, nfixed, any, nany, req);
    return m->policy;
}
