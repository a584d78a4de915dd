#ifndef RL_LISTEN_H
#define RL_LISTEN_H
#include <stddef.h>

/* Listening sockets. Every worker listens on its own socket of one
 * SO_REUSEPORT group, so the kernel spreads connections over them. Such
 * a group also takes in any other process of the same user that binds
 * the port with SO_REUSEPORT: a second ratelimitd started by mistake
 * would silently take a share of the connections (with the memory store,
 * its own counts). So the address is probed first without SO_REUSEPORT,
 * which fails while anything listens there. Main thread or a worker's
 * start-up; blocking calls (getaddrinfo) are fine there. */

/* A non-blocking, close-on-exec listening socket on host:port ("" host:
 * any address) with SO_REUSEADDR and SO_REUSEPORT; the port it got in
 * *bound_port (port 0 picks one). Returns the fd, or -1 with err filled
 * (errlen bytes) naming what, the address and why. */
int rl_listen_socket(const char *what, const char *host, int port,
                     int *bound_port, char *err, size_t errlen);

/* 0 when nothing listens on host:port (or port is 0), else -1 with err
 * filled as for rl_listen_socket. Nothing stays bound. */
int rl_listen_probe(const char *what, const char *host, int port, char *err,
                    size_t errlen);
#endif
