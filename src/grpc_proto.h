#ifndef RL_GRPC_PROTO_H
#define RL_GRPC_PROTO_H

/* The C of proto/ that protoc-c generates at build time: Envoy's
 * rate-limit service v3 and the gRPC health service v1. One include for
 * every module that speaks them. */
#include "envoy/service/ratelimit/v3/rls.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#endif
