// A peer for the benchmark: POST /v1/decide with ratelimitd's request
// shape ({"path", "tenant", ...}), decided by rate-limiter-flexible's
// RateLimiterRedis over ioredis (an atomic Lua script per decision, like
// ratelimitd), answered with a JSON verdict. One process per core
// (cluster), as ratelimitd runs one worker per core.
//   node server.js PORT REDIS_PORT [WORKERS]
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2] || 8090);
const redisPort = Number(process.argv[3] || 6379);
const workers = Number(process.argv[4] || require('node:os').cpus().length);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  });
} else {
  const Redis = require('ioredis');
  const { RateLimiterRedis } = require('rate-limiter-flexible');
  const redis = new Redis({ host: '127.0.0.1', port: redisPort, enableOfflineQueue: false });
  // The allow path's policy: 1,000,000 per minute per tenant, as in
  // bench/run.sh's ratelimitd configuration.
  const allow = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'peer-allow', points: 1000000, duration: 60 });
  // The deny path's policy: 1 per hour per tenant.
  const deny = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'peer-deny', points: 1, duration: 3600 });

  const reply = (res, status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };

  http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/decide') return reply(res, 404, { error: 'no such endpoint', code: 'NOT_FOUND' });
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let r;
      try { r = JSON.parse(Buffer.concat(chunks).toString()); } catch (e) {
        return reply(res, 400, { error: 'malformed JSON', code: 'VAL_002' });
      }
      if (typeof r.path !== 'string' || typeof r.tenant !== 'string') {
        return reply(res, 422, { error: 'path and tenant are required', code: 'VAL_001' });
      }
      const limiter = r.path.startsWith('/deny') ? deny : allow;
      limiter.consume(r.tenant, 1).then((rl) => {
        reply(res, 200, { allowed: true, remaining: rl.remainingPoints, reset_after_ms: rl.msBeforeNext });
      }).catch((rl) => {
        if (rl instanceof Error) return reply(res, 503, { error: 'store unavailable', code: 'STORE_001' });
        reply(res, 200, { allowed: false, remaining: 0, retry_after_ms: rl.msBeforeNext, status: 429 });
      });
    });
  }).listen(port, '127.0.0.1');
}
