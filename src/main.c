/* ratelimitd: argument parsing, start-up, signals, shutdown. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/event.h>
#include "config.h"
#include "conf.h"
#include "log.h"
#include "reload.h"
#include "store_mem.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: ratelimitd -c FILE [--listen HOST:PORT] [-v]\n"
        "       ratelimitd --check-config FILE\n"
        "\n"
        "A distributed rate-limit decision service.\n"
        "\n"
        "  -c, --config FILE        run with this JSON configuration\n"
        "  -t, --check-config FILE  validate FILE and exit (0 valid, 1 "
        "invalid)\n"
        "  -l, --listen HOST:PORT   override the configuration's \"listen\"\n"
        "  -v, --verbose            debug logging\n"
        "  -V, --version            print the version and exit\n"
        "  -h, --help               print this help and exit\n"
        "\n"
        "Signals: SIGHUP reloads FILE (an invalid file is refused and the "
        "running\n"
        "configuration stays); SIGTERM and SIGINT finish the requests in "
        "flight and exit.\n");
}

/* Splits "host:port" or "[v6]:port". Returns 0 or -1. */
static int split_host_port(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    char *end;
    long p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        if ((size_t)(close - s - 1) >= hostlen) {
            return -1;
        }
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= hostlen) {
            return -1;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 || p > 65535) {
        return -1;
    }
    *port = (int)p;
    return 0;
}

/* Opens one listening socket per worker on the same address, with
 * SO_REUSEPORT so the kernel spreads connections across workers. Port 0
 * picks a free port once; the others bind that same port. Returns the
 * number opened (== n) or -1. fds[] are non-blocking. */
static int open_listeners(const char *host, int port, int n, int *fds,
                          int *bound_port)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[8];
    int i, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    for (i = 0; i < n; i++) {
        fds[i] = -1;
    }
    for (i = 0; i < n; i++) {
        snprintf(portstr, sizeof(portstr), "%d", port);
        if (getaddrinfo(host[0] != '\0' ? host : NULL, portstr, &hints, &ai) !=
            0) {
            rl_error("cannot resolve listen address %s", host);
            goto err;
        }
        fds[i] = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 ||
            setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
                0 ||
            setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
                0 ||
            bind(fds[i], ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fds[i], 1024) != 0) {
            rl_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
            freeaddrinfo(ai);
            goto err;
        }
        freeaddrinfo(ai);
        ai = NULL;
        if (port == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            getsockname(fds[i], (struct sockaddr *)&ss, &sl);
            port = ntohs(ss.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    *bound_port = port;
    return n;

err:
    for (i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
        fds[i] = -1;
    }
    return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    rl_info("signal %d: stopping", (int)sig);
    event_base_loopexit(base, NULL);
}

/* SIGHUP: reload the configuration file (main thread, in the loop). */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    rl_info("signal %d: reloading the configuration", (int)sig);
    rl_reload(arg);
}

/* Runs the service until SIGTERM/SIGINT. conf and json are taken over.
 * Returns the exit code. */
static int run(rl_conf_t *conf, json_t *json, const char *path,
               int listen_overridden, int verbose)
{
    rl_app_t app;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    SSL_CTX *tls = NULL;
    char err[512];
    int *fds = NULL;
    int i, nworkers, started = 0, port = 0, rc = 1;

    memset(&app, 0, sizeof(app));
    nworkers =
        conf->workers > 0 ? conf->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nworkers < 1) {
        nworkers = 1;
    }
    app.conf = conf;
    app.conf_path = path;
    app.listen_overridden = listen_overridden;
    app.verbose = verbose;
    app.started_ms = rl_now_ms();
    app.started_us = rl_mono_us();
    app.workers = calloc((size_t)nworkers, sizeof(rl_worker_t));
    fds = malloc((size_t)nworkers * sizeof(int));
    if (app.workers == NULL || fds == NULL) {
        goto cleanup;
    }
    for (i = 0; i < nworkers; i++) {
        fds[i] = -1;
    }
    if (conf->store.type == RL_STORE_MEMORY &&
        (app.mem = rl_mem_table_new()) == NULL) {
        goto cleanup;
    }
    if (conf->tls.cert_file != NULL &&
        (tls = rl_tls_ctx_new(&conf->tls, err, sizeof(err))) == NULL) {
        rl_log_kv(RL_LOG_ERROR, "invalid TLS configuration", "error", err,
                  NULL);
        goto cleanup;
    }
    if (open_listeners(conf->listen_host, conf->listen_port, nworkers, fds,
                       &port) < 0) {
        goto cleanup;
    }
    for (i = 0; i < nworkers; i++) {
        app.nworkers = i + 1;
        if (rl_worker_init(&app.workers[i], &app, i, fds[i]) != 0) {
            goto cleanup;
        }
        fds[i] = -1; /* the worker's HTTP server owns it now */
        if (tls != NULL) {
            rl_http_server_set_tls(app.workers[i].http, tls);
        }
    }
    app.access_log = rl_access_log_new(app.nworkers, 262144, STDERR_FILENO);
    if (app.access_log == NULL) {
        goto cleanup;
    }
    /* From here on the conf belongs to its reference (freed with it). */
    i = rl_reload_start(&app, conf, json);
    conf = NULL;
    json = NULL;
    if (i != 0) {
        goto cleanup;
    }

    base = event_base_new();
    if (base == NULL) {
        goto cleanup;
    }
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    sighup = evsignal_new(base, SIGHUP, on_sighup, &app);
    if (sigterm == NULL || sigint == NULL || sighup == NULL) {
        goto cleanup;
    }
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sighup, NULL);

    /* Every worker is fully built before the first starts: the service
     * never answers half-initialised. */
    for (i = 0; i < app.nworkers; i++) {
        if (rl_worker_start(&app.workers[i]) != 0) {
            goto stop;
        }
        started++;
    }
    {
        char addr[300], workers[16], portbuf[8];
        snprintf(addr, sizeof(addr), "%s:%d", app.conf->listen_host, port);
        snprintf(workers, sizeof(workers), "%d", app.nworkers);
        snprintf(portbuf, sizeof(portbuf), "%d", port);
        rl_log_kv(RL_LOG_INFO, "listening", "address", addr, "port", portbuf,
                  "workers", workers, "store",
                  app.conf->store.type == RL_STORE_MEMORY ? "memory" : "redis",
                  "config_hash", app.conf->hash, "version", PACKAGE_VERSION,
                  "tls", tls != NULL ? "on" : "off", NULL);
    }
    event_base_dispatch(base);
    rc = 0;

stop:
    for (i = 0; i < started; i++) {
        rl_worker_stop(&app.workers[i]);
    }
    for (i = 0; i < started; i++) {
        rl_worker_join(&app.workers[i]);
    }
    rl_info("stopped");

cleanup:
    /* Workers that were built but never started still own resources. */
    for (i = started; i < app.nworkers; i++) {
        rl_worker_destroy(&app.workers[i]);
    }
    if (sigterm != NULL) {
        event_free(sigterm);
    }
    if (sigint != NULL) {
        event_free(sigint);
    }
    if (sighup != NULL) {
        event_free(sighup);
    }
    rl_access_log_free(app.access_log);
    rl_reload_stop(&app);
    rl_conf_free(conf);
    json_decref(json);
    rl_stats_registry_free();
    if (base != NULL) {
        event_base_free(base);
    }
    if (fds != NULL) {
        for (i = 0; i < nworkers; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
    }
    free(fds);
    free(app.workers);
    SSL_CTX_free(tls); /* after every worker, and its connections, is gone */
    if (app.mem != NULL) {
        rl_mem_table_free(app.mem);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *check = NULL, *listen_override = NULL;
    char err[512];
    rl_conf_t *conf;
    json_t *json = NULL;
    int opt, verbose = 0, rc;

    while ((opt = getopt_long(argc, argv, "c:t:l:vVh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 't': check = optarg; break;
        case 'l': listen_override = optarg; break;
        case 'v': verbose = 1; break;
        case 'V': printf("ratelimitd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (config == NULL && check == NULL)) {
        usage(stderr);
        return 2;
    }
    if (check != NULL) {
        conf = rl_conf_load(check, err, sizeof(err));
        if (conf == NULL) {
            fprintf(stderr, "%s: %s\n", check, err);
            return 1;
        }
        if (conf->tls.cert_file != NULL) {
            SSL_CTX *tls = rl_tls_ctx_new(&conf->tls, err, sizeof(err));
            if (tls == NULL) {
                fprintf(stderr, "%s: %s\n", check, err);
                rl_conf_free(conf);
                return 1;
            }
            SSL_CTX_free(tls);
        }
        printf("%s: ok (%d policies)\n", check, conf->npolicies);
        rl_conf_free(conf);
        return 0;
    }

    conf = rl_conf_read(config, &json, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "%s: %s\n", config, err);
        rl_log_kv(RL_LOG_ERROR, "invalid configuration", "file", config,
                  "error", err, NULL);
        return 1;
    }
    if (listen_override != NULL) {
        char host[256];
        int port;
        if (split_host_port(listen_override, host, sizeof(host), &port) != 0) {
            fprintf(stderr, "--listen: \"%s\" is not HOST:PORT\n",
                    listen_override);
            rl_conf_free(conf);
            json_decref(json);
            return 2;
        }
        free(conf->listen_host);
        conf->listen_host = strdup(host);
        conf->listen_port = port;
    }
    {
        int level = rl_log_level_parse(conf->log_level);
        rl_log_set_level(verbose      ? RL_LOG_DEBUG
                         : level >= 0 ? (rl_log_level_t)level
                                      : RL_LOG_INFO);
    }
    signal(SIGPIPE, SIG_IGN);
    rc = run(conf, json, config, listen_override != NULL, verbose);
    return rc;
}
