/* libFuzzer target: the connection state machine (http_conn.c and the
 * reply writer) fed with arbitrary splits of arbitrary input. Each input
 * gets a private event_base and a server whose connection reads one end
 * of a socketpair; the fuzzer writes the other end in pieces (the first
 * byte picks their sizes and whether the input ends with a half-close),
 * running the loop between pieces and reading every reply. The handler
 * answers at once, later (from a timer), or as a weighted batch, by the
 * request's path, with a tiny max_inflight_decisions so back-pressure
 * holds and resumes connections. Checks: every reply the client reads
 * starts with a status line, and the loop leaves no connection behind
 * once the client has gone. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int pending; /* requests put off and not answered yet */

typedef struct later {
    rl_http_req_t *req;
    struct event *ev;
} later_t;

/* Answers a request the handler put off. */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    later_t *l = arg;

    (void)fd;
    (void)what;
    rl_http_reply(l->req, 200, NULL, NULL, 0, NULL, "{\"later\":1}", 11);
    pending--;
    event_free(l->ev);
    free(l);
}

/* /l...: answered from a timer; /b...: weighs 3 decisions, later; else
 * at once. */
static void handler(rl_http_req_t *req, void *arg)
{
    struct event_base *base = arg;
    struct timeval tv = {0, 0};
    later_t *l;

    if (req->path_len < 2 || (req->path[1] != 'l' && req->path[1] != 'b')) {
        rl_http_reply(req, 200, NULL, NULL, 0, NULL, "{}", 2);
        return;
    }
    if (req->path[1] == 'b') {
        rl_http_req_decisions(req, 3);
    }
    l = malloc(sizeof(*l));
    if (l == NULL || (l->ev = evtimer_new(base, later_cb, l)) == NULL) {
        free(l);
        rl_http_reply(req, 503, NULL, NULL, 0, NULL, "{}", 2);
        return;
    }
    l->req = req;
    pending++;
    evtimer_add(l->ev, &tv);
}

/* Reads what the server wrote; aborts on a reply without a status line. */
static void client_read(int fd, int *fresh)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (*fresh && (n < 9 || memcmp(buf, "HTTP/1.1 ", 9) != 0)) {
            abort();
        }
        *fresh = 0;
    }
}

/* A listening socket the server owns and never enables. */
static int listen_fd(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_conf_http_t lim = {512, 1024, 600000, 600000, 16, 4};
    struct event_base *base;
    rl_http_server_t *s;
    struct sockaddr_in peer;
    int sv[2], fd, i, fresh = 1;
    unsigned seed;
    size_t off = 1;

    signal(SIGPIPE, SIG_IGN); /* the server may close before it all went */
    if (size < 1 || (base = event_base_new()) == NULL) {
        return 0;
    }
    fd = listen_fd();
    s = fd >= 0 ? rl_http_server_new(base, fd, &lim, "fz", handler, base)
                : NULL;
    if (s == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        if (s != NULL) {
            rl_http_server_free(s);
        }
        event_base_free(base);
        return 0;
    }
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    if (rl_http_conn_new(s, sv[1], (struct sockaddr *)&peer, sizeof(peer)) ==
        NULL) {
        close(sv[0]);
        rl_http_server_free(s);
        event_base_free(base);
        return 0;
    }
    seed = data[0];
    while (off < size) {
        size_t k = (seed & 7) == 0 ? size - off : (seed & 7) * (off & 7) + 1;
        ssize_t w;

        if (k > size - off) {
            k = size - off;
        }
        w = send(sv[0], data + off, k, MSG_NOSIGNAL);
        if (w <= 0) {
            if (errno != EAGAIN) {
                break;
            }
            w = 0;
        }
        off += (size_t)w;
        for (i = 0; i < 3; i++) {
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
        client_read(sv[0], &fresh);
        seed = seed * 33 + 7;
    }
    if (data[0] & 0x80) {
        shutdown(sv[0], SHUT_WR);
    }
    for (i = 0; i < 8; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        client_read(sv[0], &fresh);
    }
    close(sv[0]);
    for (i = 0; i < 8 || (pending > 0 && i < 1000); i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    if (pending != 0) {
        abort(); /* a request the handler answered was never released */
    }
    rl_http_server_free(s);
    event_base_free(base);
    return 0;
}
