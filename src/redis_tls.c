/* OpenSSL set-up for TLS connections to Redis: one client context per
 * store, one SSL per connection (see redis_tls.h). */
#include "redis_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "util.h"

/* Writes "cannot load <path>: <openssl reason>" into err, names the
 * field in *field, and clears this thread's OpenSSL error queue. */
static void tls_fail(const char **field, const char *name, const char *path,
                     char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160];

    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "unknown error");
    }
    ERR_clear_error();
    *field = name;
    snprintf(err, errlen, "cannot load %s: %s", path, reason);
}

/* Builds the context; every failure names the field and file at fault. */
SSL_CTX *rl_redis_tls_ctx_new(const rl_conf_tls_t *tls, const char **field,
                              char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    *field = NULL;
    if (ctx == NULL) {
        tls_fail(field, NULL, "a TLS context", err, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (tls->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1) {
            tls_fail(field, "ca_file", tls->ca_file, err, errlen);
            goto err;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_fail(field, "ca_file", "the system's CA certificates", err, errlen);
        goto err;
    }
    if (tls->cert_file != NULL &&
        SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
        tls_fail(field, "cert_file", tls->cert_file, err, errlen);
        goto err;
    }
    if (tls->key_file != NULL &&
        (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) !=
             1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        tls_fail(field, "key_file", tls->key_file, err, errlen);
        goto err;
    }
    return ctx;

err:
    SSL_CTX_free(ctx);
    return NULL;
}

/* 1 if s is a numeric IPv4 or IPv6 address. */
static int tls_is_ip(const char *s)
{
    struct in_addr a4;
    struct in6_addr a6;

    return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/* SNI for names (never for IP addresses, RFC 6066), and the identity the
 * certificate must prove. */
int rl_redis_tls_prepare(SSL *ssl, const char *server_name, const char *host)
{
    const char *name = server_name != NULL ? server_name : host;

    if (tls_is_ip(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1) {
            return RL_ERR;
        }
        return RL_OK;
    }
    if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
        SSL_set1_host(ssl, name) != 1) {
        return RL_ERR;
    }
    return RL_OK;
}
