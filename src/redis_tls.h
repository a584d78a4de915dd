#ifndef RL_REDIS_TLS_H
#define RL_REDIS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "conf.h"

/* TLS to Redis. Debian's hiredis 0.14 has no TLS, so redis_conn.c does
 * the I/O on an OpenSSL bufferevent and these helpers set OpenSSL up. */

/* Creates a client context from store.tls: TLS 1.2 or later, the server
 * certificate always verified (against ca_file, or the system's CAs),
 * and the client certificate and key when given. Returns a context the
 * caller frees with SSL_CTX_free, or NULL with *field naming the field
 * at fault ("ca_file", "cert_file", "key_file"; NULL if none) and err
 * filled ("cannot load /x: <reason>"); err never holds key material.
 * Main thread (start-up and config checks). */
SSL_CTX *rl_redis_tls_ctx_new(const rl_conf_tls_t *tls, const char **field,
                              char *err, size_t errlen);

/* Prepares ssl for a connection to host: with server_name, SNI and a
 * certificate check for that name (or IP address); without, a check
 * that the certificate carries host's IP address. RL_OK or RL_ERR. */
int rl_redis_tls_prepare(SSL *ssl, const char *server_name, const char *host);

#endif
