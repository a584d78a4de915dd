/* TLS for the listeners: an SSL_CTX built at start-up ("tls" for the
 * HTTP listener, "grpc.tls" for the gRPC one). */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

/* 0 if file can be opened for reading, else -1 with err filled. */
static int tls_readable(char *err, size_t errlen, const char *section,
                        const char *field, const char *file)
{
    FILE *f = fopen(file, "rb");

    if (f == NULL) {
        snprintf(err, errlen, "%s.%s: cannot read %s: %s", section, field, file,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Writes "section.field: what FILE: reason" with the last OpenSSL
 * error. */
static void tls_error(char *err, size_t errlen, const char *section,
                      const char *field, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "%s.%s: %s %s: %s", section, field, what, file,
             reason != NULL ? reason : "unknown error");
    ERR_clear_error();
}

SSL_CTX *rl_tls_ctx_new(const rl_conf_listen_tls_t *tls, const char *section,
                        char *err, size_t errlen)
{
    SSL_CTX *ctx;

    if (tls_readable(err, errlen, section, "cert_file", tls->cert_file) != 0 ||
        tls_readable(err, errlen, section, "key_file", tls->key_file) != 0) {
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "%s: cannot create a TLS context", section);
        ERR_clear_error();
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, tls->min_version == 13
                                               ? TLS1_3_VERSION
                                               : TLS1_2_VERSION) != 1) {
        snprintf(err, errlen, "%s.min_version: not supported by this OpenSSL",
                 section);
        goto err;
    }
    /* No renegotiation (a cheap way to make the server work), no
     * compression (CRIME); the stateful session cache is off, so many
     * handshakes cannot grow memory (tickets still resume sessions). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
        tls_error(err, errlen, section, "cert_file", "cannot load",
                  tls->cert_file);
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) !=
        1) {
        tls_error(err, errlen, section, "key_file", "cannot load",
                  tls->key_file);
        goto err;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, section, "key_file",
                  "does not match the certificate in", tls->cert_file);
        goto err;
    }
    return ctx;

err:
    SSL_CTX_free(ctx);
    return NULL;
}
