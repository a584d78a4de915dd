/* See bev_write.h. */
#include "bev_write.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>

int rl_bev_write_now(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    int rc;

    if (evbuffer_get_length(out) == 0) {
        return 0;
    }
    /* The bufferevent freezes its output's front; it unfreezes the same
     * way around its own writes. */
    evbuffer_unfreeze(out, 1);
    rc = evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return -1;
    }
    if (evbuffer_get_length(out) == 0) {
        return 0;
    }
    bufferevent_enable(bev, EV_WRITE);
    return 1;
}
