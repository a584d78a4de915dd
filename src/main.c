/* ratelimitd: argument parsing, start-up, signals, shutdown. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "config.h"
#include "conf.h"
#include "convert_envoy.h"
#include "listen.h"
#include "log.h"
#include "reload.h"
#include "store_mem.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

/* Prints the usage text to out. */
static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: ratelimitd -c FILE [--listen HOST:PORT] [-v]\n"
        "       ratelimitd --check-config FILE\n"
        "       ratelimitd --convert-envoy-ratelimit FILE.yaml...\n"
        "\n"
        "A distributed rate-limit decision service.\n"
        "\n"
        "  -c, --config FILE        run with this JSON configuration\n"
        "  -t, --check-config FILE  validate FILE and exit (0 valid, 1 "
        "invalid)\n"
        "  -l, --listen HOST:PORT   override the configuration's \"listen\"\n"
        "      --convert-envoy-ratelimit FILE.yaml...\n"
        "                           print envoyproxy/ratelimit configs as "
        "ratelimitd\n"
        "                           JSON policies (0 ok, 1 unsupported or "
        "invalid)\n"
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

/* Opens one listening socket per worker on the same address (listen.h),
 * after checking that no other process listens there. Port 0 picks a
 * free port once; the others bind that same port. Returns the number
 * opened (== n) or -1. fds[] are non-blocking. */
static int open_listeners(const char *host, int port, int n, int *fds,
                          int *bound_port)
{
    char err[256];
    int i;

    for (i = 0; i < n; i++) {
        fds[i] = -1;
    }
    if (rl_listen_probe("listen", host, port, err, sizeof(err)) != 0) {
        rl_error("%s", err);
        return -1;
    }
    for (i = 0; i < n; i++) {
        fds[i] =
            rl_listen_socket("listen", host, port, &port, err, sizeof(err));
        if (fds[i] < 0) {
            rl_error("%s", err);
            goto err;
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

/* SIGTERM, SIGINT: stop the main loop (arg is its base); main thread. */
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

/* What one run of the service holds, so start-up, serving and cleanup can
 * be separate steps with one cleanup path. */
typedef struct main_run {
    rl_app_t app;
    rl_conf_t *conf; /* until rl_reload_start takes it */
    json_t *json;    /* same */
    struct event_base *base;
    struct event *sig[3]; /* SIGTERM, SIGINT, SIGHUP */
    SSL_CTX *tls;         /* listener TLS, NULL for plain HTTP */
    int *fds;             /* listening sockets not yet owned by a worker */
    int nfds;
    int started; /* workers started */
    int port;    /* the bound port */
} main_run_t;

/* Builds everything the workers need from r->conf: the memory table, the
 * listener TLS context, one listening socket and one initialised (not
 * started) worker per thread, the access log. 0 or -1 (run_cleanup
 * frees what was built). Main thread. */
static int run_build(main_run_t *r)
{
    rl_conf_t *conf = r->conf;
    char err[512];
    int n;
    int i;

    n = conf->workers > 0 ? conf->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        n = 1;
    }
    r->app.workers = calloc((size_t)n, sizeof(rl_worker_t));
    r->fds = malloc((size_t)n * sizeof(int));
    if (r->app.workers == NULL || r->fds == NULL) {
        return -1;
    }
    r->nfds = n;
    for (i = 0; i < n; i++) {
        r->fds[i] = -1;
    }
    if (conf->store.type == RL_STORE_MEMORY &&
        (r->app.mem = rl_mem_table_new()) == NULL) {
        return -1;
    }
    if (conf->tls.cert_file != NULL &&
        (r->tls = rl_tls_ctx_new(&conf->tls, "tls", err, sizeof(err))) ==
            NULL) {
        rl_log_kv(RL_LOG_ERROR, "invalid TLS configuration", "error", err,
                  NULL);
        return -1;
    }
    if (open_listeners(conf->listen_host, conf->listen_port, n, r->fds,
                       &r->port) < 0) {
        return -1;
    }
    if (conf->grpc != NULL &&
        rl_listen_probe("grpc.listen", conf->grpc->listen_host,
                        conf->grpc->listen_port, err, sizeof(err)) != 0) {
        rl_error("%s", err);
        return -1;
    }
    for (i = 0; i < n; i++) {
        r->app.nworkers = i + 1;
        if (rl_worker_init(&r->app.workers[i], &r->app, i, r->fds[i]) != 0) {
            return -1;
        }
        r->fds[i] = -1; /* the worker's HTTP server owns it now */
        if (r->tls != NULL) {
            rl_http_server_set_tls(r->app.workers[i].http, r->tls);
        }
    }
    r->app.access_log =
        rl_access_log_new(r->app.nworkers, 262144, STDERR_FILENO);
    return r->app.access_log != NULL ? 0 : -1;
}

/* Creates the main loop and its signal events (SIGTERM and SIGINT stop,
 * SIGHUP reloads). 0 or -1. Main thread. */
static int run_signals(main_run_t *r)
{
    int i;

    r->base = event_base_new();
    if (r->base == NULL) {
        return -1;
    }
    r->sig[0] = evsignal_new(r->base, SIGTERM, on_signal, r->base);
    r->sig[1] = evsignal_new(r->base, SIGINT, on_signal, r->base);
    r->sig[2] = evsignal_new(r->base, SIGHUP, on_sighup, &r->app);
    for (i = 0; i < 3; i++) {
        if (r->sig[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < 3; i++) {
        evsignal_add(r->sig[i], NULL);
    }
    return 0;
}

/* Logs the "listening" line once every worker runs. */
static void run_log_listening(const main_run_t *r)
{
    const rl_conf_t *conf = r->app.conf;
    char addr[300];
    char workers[16];
    char portbuf[8];

    snprintf(addr, sizeof(addr), "%s:%d", conf->listen_host, r->port);
    snprintf(workers, sizeof(workers), "%d", r->app.nworkers);
    snprintf(portbuf, sizeof(portbuf), "%d", r->port);
    rl_log_kv(RL_LOG_INFO, "listening", "address", addr, "port", portbuf,
              "workers", workers, "store",
              conf->store.type == RL_STORE_MEMORY ? "memory" : "redis",
              "config_hash", conf->hash, "version", PACKAGE_VERSION, "tls",
              r->tls != NULL ? "on" : "off", NULL);
}

/* Starts every worker (all were fully built first: the service never
 * answers half-initialised), runs the main loop until SIGTERM/SIGINT,
 * then stops and joins the workers. The exit code. Main thread. */
static int run_serve(main_run_t *r)
{
    int rc = 1;
    int i;

    for (i = 0; i < r->app.nworkers; i++) {
        if (rl_worker_start(&r->app.workers[i]) != 0) {
            goto stop;
        }
        r->started++;
    }
    run_log_listening(r);
    event_base_dispatch(r->base);
    rc = 0;

stop:
    for (i = 0; i < r->started; i++) {
        rl_worker_stop(&r->app.workers[i]);
    }
    for (i = 0; i < r->started; i++) {
        rl_worker_join(&r->app.workers[i]);
    }
    rl_info("stopped");
    return rc;
}

/* Frees everything r holds, in dependency order. */
static void run_cleanup(main_run_t *r)
{
    int i;

    /* Workers that were built but never started still own resources. */
    for (i = r->started; i < r->app.nworkers; i++) {
        rl_worker_destroy(&r->app.workers[i]);
    }
    for (i = 0; i < 3; i++) {
        if (r->sig[i] != NULL) {
            event_free(r->sig[i]);
        }
    }
    rl_access_log_free(r->app.access_log);
    rl_reload_stop(&r->app);
    rl_conf_free(r->conf);
    json_decref(r->json);
    rl_stats_registry_free();
    if (r->base != NULL) {
        event_base_free(r->base);
    }
    for (i = 0; i < r->nfds; i++) {
        if (r->fds[i] >= 0) {
            close(r->fds[i]);
        }
    }
    free(r->fds);
    free(r->app.workers);
    SSL_CTX_free(r->tls); /* after every worker, and its connections, is gone */
    if (r->app.mem != NULL) {
        rl_mem_table_free(r->app.mem);
    }
}

/* Runs the service until SIGTERM/SIGINT. conf and json are taken over.
 * Returns the exit code. Main thread. */
static int run(rl_conf_t *conf, json_t *json, const char *path,
               int listen_overridden, int verbose)
{
    main_run_t r;
    int rc = 1;

    memset(&r, 0, sizeof(r));
    r.conf = conf;
    r.json = json;
    r.app.conf = conf;
    r.app.conf_path = path;
    r.app.listen_overridden = listen_overridden;
    r.app.verbose = verbose;
    r.app.started_ms = rl_now_ms();
    r.app.started_us = rl_mono_us();
    if (run_build(&r) == 0) {
        /* From here on the conf belongs to its reference (freed with it). */
        int started = rl_reload_start(&r.app, r.conf, r.json);

        r.conf = NULL;
        r.json = NULL;
        if (started == 0 && run_signals(&r) == 0) {
            rc = run_serve(&r);
        }
    }
    run_cleanup(&r);
    return rc;
}

/* The command line. */
typedef struct main_opts {
    const char *config; /* -c */
    const char *check;  /* -t */
    const char *listen; /* -l */
    int verbose;        /* -v */
    int convert;        /* --convert-envoy-ratelimit: the operands */
} main_opts_t;

/* Parses argv into o. Returns -1 to go on, or the exit code: 0 after
 * --help or --version, 2 on a usage error. */
static int parse_args(int argc, char **argv, main_opts_t *o)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"convert-envoy-ratelimit", no_argument, NULL, 'E'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    memset(o, 0, sizeof(*o));
    while ((opt = getopt_long(argc, argv, "c:t:l:vVh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': o->config = optarg; break;
        case 't': o->check = optarg; break;
        case 'l': o->listen = optarg; break;
        case 'v': o->verbose = 1; break;
        case 'V': printf("ratelimitd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        case 'E': o->convert = 1; break;
        default: usage(stderr); return 2;
        }
    }
    if (o->convert) {
        if (optind == argc || o->config != NULL || o->check != NULL ||
            o->listen != NULL) {
            usage(stderr);
            return 2;
        }
        return -1;
    }
    if (optind < argc || (o->config == NULL && o->check == NULL)) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* --check-config's TLS step: tls (NULL: none) loads as the listener
 * would load it. 0, or 1 with the error on stderr. */
static int check_tls(const rl_conf_listen_tls_t *tls, const char *section,
                     const char *path)
{
    char err[512];
    SSL_CTX *ctx;

    if (tls == NULL) {
        return 0;
    }
    if ((ctx = rl_tls_ctx_new(tls, section, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    SSL_CTX_free(ctx);
    return 0;
}

/* --check-config: validates the file at path, the TLS files of both
 * listeners included. The exit code: 0 valid, 1 invalid. */
static int check_config(const char *path)
{
    char err[512];
    rl_conf_t *conf = rl_conf_load(path, err, sizeof(err));

    if (conf == NULL) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    if (check_tls(conf->tls.cert_file != NULL ? &conf->tls : NULL, "tls",
                  path) != 0 ||
        check_tls(conf->grpc != NULL && conf->grpc->tls.cert_file != NULL
                      ? &conf->grpc->tls
                      : NULL,
                  "grpc.tls", path) != 0) {
        rl_conf_free(conf);
        return 1;
    }
    printf("%s: ok (%d policies)\n", path, conf->npolicies);
    rl_conf_free(conf);
    return 0;
}

/* --convert-envoy-ratelimit: converts the files names[0..n-1] and
 * prints the JSON on stdout. The exit code: 0, or 1 with "FILE:LINE:
 * problem" on stderr. */
static int convert_envoy(char **names, int n)
{
    rl_convert_t *cv = rl_convert_new();
    char err[512];
    char *json = NULL;
    int i;

    snprintf(err, sizeof(err), "out of memory");
    for (i = 0; cv != NULL && i < n; i++) {
        if (rl_convert_add_file(cv, names[i], err, sizeof(err)) != 0) {
            break;
        }
    }
    if (cv != NULL && i == n) {
        json = rl_convert_json(cv, err, sizeof(err));
    }
    rl_convert_free(cv);
    if (json == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    fputs(json, stdout);
    free(json);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* --listen HOST:PORT: replaces conf's listen address. 0, or -1 (reported)
 * when spec is not HOST:PORT. */
static int apply_listen(rl_conf_t *conf, const char *spec)
{
    char host[256];
    int port;

    if (split_host_port(spec, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "--listen: \"%s\" is not HOST:PORT\n", spec);
        return -1;
    }
    free(conf->listen_host);
    conf->listen_host = strdup(host);
    conf->listen_port = port;
    return 0;
}

/* Parses the command line, then checks the config (-t), converts
 * envoyproxy/ratelimit files, or runs the service (-c). Exit codes: 0
 * ok, 1 invalid config or failed start, 2 usage error. */
int main(int argc, char **argv)
{
    main_opts_t o;
    char err[512];
    rl_conf_t *conf;
    json_t *json = NULL;
    int level;
    int rc = parse_args(argc, argv, &o);

    if (rc >= 0) {
        return rc;
    }
    if (o.convert) {
        return convert_envoy(argv + optind, argc - optind);
    }
    if (o.check != NULL) {
        return check_config(o.check);
    }
    conf = rl_conf_read(o.config, &json, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "%s: %s\n", o.config, err);
        rl_log_kv(RL_LOG_ERROR, "invalid configuration", "file", o.config,
                  "error", err, NULL);
        return 1;
    }
    if (o.listen != NULL && apply_listen(conf, o.listen) != 0) {
        rl_conf_free(conf);
        json_decref(json);
        return 2;
    }
    level = rl_log_level_parse(conf->log_level);
    rl_log_set_level(o.verbose    ? RL_LOG_DEBUG
                     : level >= 0 ? (rl_log_level_t)level
                                  : RL_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    return run(conf, json, o.config, o.listen != NULL, o.verbose);
}
