/* libFuzzer target: the configuration parser. Any bytes in, a valid conf
 * or an error message out; the conf is freed again. A JSON syntax error
 * ("line L column C: ...") never quotes the text it failed near (it may
 * be a secret). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    rl_conf_t *conf = rl_conf_parse((const char *)data, size, err, sizeof(err));

    if (conf == NULL) {
        if (err[0] == '\0' ||
            (strncmp(err, "line ", 5) == 0 && strstr(err, " near '") != NULL)) {
            abort();
        }
        return 0;
    }
    rl_conf_free(conf);
    return 0;
}
