/* libFuzzer target: the chunked body decoder. The first byte picks the
 * piece sizes the rest arrives in (as reads would split it); each piece
 * is copied to a buffer of exactly its size so any read past it is
 * caught. Checks what the connection relies on: a known status, a
 * message with every refusal, a body within the limit, a body end
 * inside the piece that completed it, and no more than FUZZ_MAX_FRAMING
 * bytes of framing around the body's bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define FUZZ_MAX_BODY 4096
#define FUZZ_MAX_FRAMING 256 /* size lines, CRLFs, trailers */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_http_chunked_t st;
    rl_http_body_t body = {NULL, 0, 0};
    unsigned seed;
    size_t off = 1;
    int rc = 0;

    if (size < 1) {
        return 0;
    }
    seed = data[0];
    rl_http_parse_chunked_init(&st);
    while (off < size && rc == 0) {
        size_t k = (seed & 7) == 0 ? size - off : (seed & 7) + (off & 3);
        const char *msg = NULL;
        size_t used = 0;
        char *piece;

        if (k > size - off) {
            k = size - off;
        }
        piece = malloc(k);
        if (piece == NULL) {
            break;
        }
        memcpy(piece, data + off, k);
        rc =
            rl_http_parse_chunked(&st, piece, k, off + k == size, &body,
                                  FUZZ_MAX_BODY, FUZZ_MAX_FRAMING, &used, &msg);
        free(piece);
        if ((rc != 0 && rc != 1 && rc != 400 && rc != 413 && rc != 431 &&
             rc != 503) ||
            (rc > 1 && msg == NULL) || (rc == 1 && used > k) ||
            body.len > FUZZ_MAX_BODY ||
            (body.len > 0 && body.len + 1 > body.cap)) {
            abort();
        }
        /* The wire bound: body bytes plus at most FUZZ_MAX_FRAMING. */
        if (rc <= 1 &&
            off - 1 + (rc == 1 ? used : k) > body.len + FUZZ_MAX_FRAMING) {
            abort();
        }
        off += k;
        seed = seed * 33 + 7;
    }
    free(body.data);
    return 0;
}
