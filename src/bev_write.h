#ifndef RL_BEV_WRITE_H
#define RL_BEV_WRITE_H

#include <event2/bufferevent.h>

/* Writing a plain socket bufferevent's output at once, from the caller,
 * instead of registering EV_WRITE and waiting a loop pass for it: http_reply.c
 * answers requests and redis_pipe.c flushes pipelines this way. The
 * bufferevent keeps EV_WRITE disabled except while bytes are left. */

/* Writes what bev's output holds to its socket. Returns 0 when all of it
 * went out; 1 when some is left, and EV_WRITE is now enabled (the
 * bufferevent writes the rest and calls its write callback once the
 * output drains; that callback disables EV_WRITE again); -1 on a socket
 * error, errno set, nothing enabled. */
int rl_bev_write_now(struct bufferevent *bev);

#endif
