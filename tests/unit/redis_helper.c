/* Starts and stops throwaway redis-server processes for the C tests. */
#include "redis_helper.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HELPER_MAX_ARGS 32
#define HELPER_WAIT_MS 5000

static char helper_root[64];
static pid_t helper_root_owner;

/* Removes one entry of the root tree (nftw callback, children first). */
static int helper_rm_entry(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* atexit: the process that made the root removes it. */
static void helper_remove_root(void)
{
    if (helper_root[0] != '\0' && getpid() == helper_root_owner) {
        nftw(helper_root, helper_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
}

void rl_test_redis_init(void)
{
    if (helper_root[0] != '\0') {
        return;
    }
    snprintf(helper_root, sizeof(helper_root), "/tmp/rl-test-XXXXXX");
    if (mkdtemp(helper_root) == NULL) {
        helper_root[0] = '\0';
        return;
    }
    helper_root_owner = getpid();
    atexit(helper_remove_root);
}

/* Sleeps ms milliseconds. */
static void helper_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int rl_test_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

redisContext *rl_test_redis_connect(const rl_test_redis_t *r,
                                    const char *password)
{
    struct timeval tv = {2, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", r->port, tv);

    if (ctx == NULL || ctx->err) {
        if (ctx != NULL) {
            redisFree(ctx);
        }
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    if (password != NULL) {
        redisReply *rep = redisCommand(ctx, "AUTH %s", password);
        int ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (!ok) {
            redisFree(ctx);
            return NULL;
        }
    }
    return ctx;
}

redisReply *rl_test_redis_cmd(const rl_test_redis_t *r, const char *password,
                              const char *fmt, ...)
{
    redisContext *ctx = rl_test_redis_connect(r, password);
    redisReply *rep;
    va_list ap;

    if (ctx == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    rep = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return rep;
}

/* 1 if the server answers anything to PING (NOAUTH counts: it is up). */
static int helper_answers(const rl_test_redis_t *r)
{
    redisReply *rep = rl_test_redis_cmd(r, NULL, "PING");

    if (rep == NULL) {
        return 0;
    }
    freeReplyObject(rep);
    return 1;
}

/* Child side of the fork: becomes redis-server, never returns. */
static void helper_exec(const rl_test_redis_t *r, const char *const *extra)
{
    const char *argv[HELPER_MAX_ARGS];
    char port[16];
    char log[192];
    int argc = 0;
    int fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = r->dir;
    while (extra != NULL && *extra != NULL && argc < HELPER_MAX_ARGS - 1) {
        argv[argc++] = *extra++;
    }
    argv[argc] = NULL;
    execvp("redis-server", (char *const *)argv);
    _exit(127);
}

int rl_test_redis_start(rl_test_redis_t *r, int port, const char *const *extra)
{
    int waited;

    if (r->dir[0] == '\0') {
        rl_test_redis_init();
        snprintf(r->dir, sizeof(r->dir), "%s/redis-XXXXXX",
                 helper_root[0] != '\0' ? helper_root : "/tmp");
        if (mkdtemp(r->dir) == NULL) {
            r->dir[0] = '\0';
            return -1;
        }
    }
    r->port = port > 0 ? port : rl_test_free_port();
    if (r->port <= 0) {
        return -1;
    }
    r->pid = fork();
    if (r->pid < 0) {
        r->pid = 0;
        return -1;
    }
    if (r->pid == 0) {
        helper_exec(r, extra);
    }
    for (waited = 0; waited < HELPER_WAIT_MS; waited += 20) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0; /* it exited: port taken or bad arguments */
            return -1;
        }
        if (helper_answers(r)) {
            return 0;
        }
        helper_sleep_ms(20);
    }
    rl_test_redis_stop(r);
    return -1;
}

void rl_test_redis_stop(rl_test_redis_t *r)
{
    int waited;
    int status;

    if (r->pid <= 0) {
        return;
    }
    kill(r->pid, SIGTERM);
    for (waited = 0; waited < HELPER_WAIT_MS; waited += 10) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        helper_sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

void rl_test_redis_cleanup(rl_test_redis_t *r)
{
    DIR *d;
    struct dirent *e;
    char path[512];

    rl_test_redis_stop(r);
    if (r->dir[0] == '\0') {
        return;
    }
    d = opendir(r->dir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(path, sizeof(path), "%s/%s", r->dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(r->dir);
    r->dir[0] = '\0';
}
