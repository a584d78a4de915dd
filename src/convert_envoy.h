#ifndef RL_CONVERT_ENVOY_H
#define RL_CONVERT_ENVOY_H

#include <stddef.h>

/* envoyproxy/ratelimit YAML configuration -> ratelimitd JSON policies,
 * for `ratelimitd --convert-envoy-ratelimit FILE...`. Pure except for
 * reading the files: YAML text in, JSON text or one error line out.
 *
 * Each file holds one domain and its nested descriptors. Every
 * descriptor with a rate_limit becomes a policy matching the whole path
 * of entries from the root ("match": {"domain", "descriptor": [...]}),
 * keyed on the entries without a fixed value ("descriptor.NAME"), with
 * one fixed_window limit (envoyproxy/ratelimit counts fixed windows
 * aligned to the epoch). At each level entries with a value come before
 * those without, so first-match order gives envoyproxy/ratelimit's "most
 * specific value wins". Several files merge into one list of policies.
 *
 * Errors are "FILE:LINE: problem" (malformed YAML, unknown fields, and
 * the constructs ratelimitd cannot express, such as "replaces"). */

typedef struct rl_convert rl_convert_t;

/* A new, empty conversion; NULL when out of memory. The caller frees it
 * with rl_convert_free. Any thread (one conversion per thread). */
rl_convert_t *rl_convert_new(void);

/* Frees cv and everything it holds (NULL is fine). */
void rl_convert_free(rl_convert_t *cv);

/* Adds one file's YAML text, named file in errors (file is copied).
 * 0, or -1 with "FILE:LINE: problem" in err (cv is then unusable but
 * must still be freed). */
int rl_convert_add(rl_convert_t *cv, const char *file, const char *text,
                   size_t len, char *err, size_t errlen);

/* Reads the file at path and adds it as rl_convert_add does. 0 or -1
 * (err set, also when the file cannot be read). */
int rl_convert_add_file(rl_convert_t *cv, const char *path, char *err,
                        size_t errlen);

/* The ratelimitd configuration of everything added, as indented JSON
 * text ending in a newline: {"policies": [...]}. The caller frees it
 * with free(). NULL with "FILE:LINE: problem" in err when a construct
 * has no equivalent (an unlimited descriptor that a more general policy
 * would count, say). */
char *rl_convert_json(rl_convert_t *cv, char *err, size_t errlen);

#endif
