/* libFuzzer target: the configuration parser. Any bytes in, a valid conf
 * or an error message out; the conf is freed again. A JSON syntax error
 * ("line L column C: ...") never quotes the text it failed near (it may
 * be a secret). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    rl_conf_t *conf = rl_conf_parse((const char *)data, size, err, sizeof(err));

    if (conf == NULL) {
        int line, column;

        /* A syntax error starts "line L column C"; a field name that
         * merely reads "line ..." (echoed in its JSON path) is no quote. */
        if (err[0] == '\0' ||
            (sscanf(err, "line %d column %d", &line, &column) == 2 &&
             strstr(err, " near '") != NULL)) {
            abort();
        }
        return 0;
    }
    rl_conf_free(conf);
    return 0;
}
