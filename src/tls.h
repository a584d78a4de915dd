#ifndef RL_TLS_H
#define RL_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "conf.h"

/* The listener's TLS context, built once at start-up from "tls" and then
 * shared read-only by every worker (each connection gets its own SSL
 * object from it in http_conn.c). Main thread only. */

/* Loads tls->cert_file (a PEM chain, leaf first) and tls->key_file,
 * checks that they belong together, and sets the minimum protocol
 * version. Returns a new context (free with SSL_CTX_free), or NULL with
 * err filled, naming the config section ("grpc.tls.key_file: cannot
 * load /etc/x.key: ..."); the error never holds key material. */
SSL_CTX *rl_tls_ctx_new(const rl_conf_listen_tls_t *tls, const char *section,
                        char *err, size_t errlen);

#endif
