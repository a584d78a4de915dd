-- wrk script: POST /v1/decide over BENCH_KEYS keys (default 10000), with
-- paths under BENCH_PREFIX (default "/allow"). At the end prints one line
--   RESULT requests=N seconds=S rps=R p50_us=A p99_us=B p999_us=C errors=E non2xx=X
-- which bench/run.sh parses.
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local prefix = os.getenv("BENCH_PREFIX") or "/allow"
local target = os.getenv("BENCH_TARGET") or "/v1/decide"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init(args)
    math.randomseed(tonumber(seed) or os.time())
end

function request()
    local k = math.random(1, keys)
    local body = '{"method":"POST","path":"' .. prefix .. '/items","tenant":"k' .. k .. '"}'
    return wrk.format(nil, target, nil, body)
end

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.timeout
    local seconds = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d seconds=%.3f rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d non2xx=%d\n",
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
        errors, summary.errors.status))
end
