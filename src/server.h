#ifndef RL_SERVER_H
#define RL_SERVER_H

#include "http.h"

/* The HTTP front end: routes, content checks, error replies, and the
 * glue from an HTTP request to rl_decide and back. The handler's arg is
 * the worker (rl_worker_t *). Worker thread only. */
void rl_server_handle(rl_http_req_t *req, void *arg);

/* Answers req with the error shape {"error", "code", "trace_id"}. */
void rl_server_error(rl_http_req_t *req, int status, const char *code, const char *message);

#endif
