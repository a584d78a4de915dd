/* Listening sockets (listen.h): one per worker in a SO_REUSEPORT group,
 * and the probe that refuses an address another process serves. */
#include "listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A bound (listening, when listens) socket on host:port, SO_REUSEPORT
 * when reuseport; -1 with err filled. */
static int listen_bind(const char *what, const char *host, int port,
                       int reuseport, int *bound_port, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char portstr[8];
    int fd, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host[0] != '\0' ? host : NULL, portstr, &hints, &ai) != 0) {
        snprintf(err, errlen, "%s: cannot resolve %s", what, host);
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        (reuseport && listen(fd, 1024) != 0) ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int e = errno;

        snprintf(err, errlen, "%s: cannot listen on %s:%d: %s%s", what, host,
                 port, strerror(e),
                 e == EADDRINUSE ? " (another process listens there)" : "");
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    *bound_port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int rl_listen_socket(const char *what, const char *host, int port,
                     int *bound_port, char *err, size_t errlen)
{
    return listen_bind(what, host, port, 1, bound_port, err, errlen);
}

int rl_listen_probe(const char *what, const char *host, int port, char *err,
                    size_t errlen)
{
    int fd, bound;

    if (port == 0) {
        return 0;
    }
    fd = listen_bind(what, host, port, 0, &bound, err, errlen);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}
