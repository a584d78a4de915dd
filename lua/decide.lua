-- The decision driver: decides one request against every limit of a
-- policy at once (protocol in src/store.h):
--   KEYS[2i-1] state of limit i, KEYS[2i] its block marker
--   ARGV = cost, n, then per limit: algo, requests, period_ms, burst, block_ms
--   reply { now_ms, allowed, per limit: allowed, remaining,
--           reset_after_ms, retry_after_ms, blocked }
-- All-or-nothing: every limit is evaluated first; state is written only
-- if all admit. cost 0 is a peek and never writes. Time is Redis TIME,
-- shared by every replica.
--
-- Each algorithm is three steps: load(key) -> state or nil (a fresh
-- limit); decide(state, lim, now_us, now_ms, cost) -> ok, remaining,
-- reset_after_ms, retry_after_ms, new_state, ttl_ms (pure); and
-- store(key, new_state, ttl_ms). GCRA keeps its TAT in the key's expiry
-- (gcra.lua); the window algorithms keep a string value with PX ttl_ms.
-- A block marker is "<until_ms>" with PX block_ms.

-- Loads a window algorithm's state string; nil if there is none.
local function string_load(key)
    return redis.call('GET', key) or nil
end

-- Stores a window algorithm's state string, expiring after ttl_ms.
local function string_store(key, value, ttl_ms)
    redis.call('SET', key, value, 'PX', string.format('%.0f', ttl_ms))
end

local algos = {
    [0] = gcra,
    [1] = { load = string_load, decide = fixed_window, store = string_store },
    [2] = { load = string_load, decide = sliding_window, store = string_store },
}

local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if not cost or cost < 0 or not n or n < 1 or #KEYS ~= 2 * n or #ARGV ~= 2 + 5 * n then
    return redis.error_reply('ERR ratelimitd: bad arguments')
end

local time = redis.call('TIME')
local sec, usec = tonumber(time[1]), tonumber(time[2])
local now_us = sec * 1000000 + usec
local now_ms = sec * 1000 + math.floor(usec / 1000)

local lims = {}
for i = 1, n do
    local a = 2 + (i - 1) * 5
    local lim = {
        algo = tonumber(ARGV[a + 1]),
        requests = tonumber(ARGV[a + 2]),
        period = tonumber(ARGV[a + 3]),
        burst = tonumber(ARGV[a + 4]),
        block = tonumber(ARGV[a + 5]),
    }
    if not algos[lim.algo] or not lim.requests or lim.requests < 1
        or not lim.period or lim.period < 1 or not lim.block then
        return redis.error_reply('ERR ratelimitd: bad limit ' .. i)
    end
    if not lim.burst or lim.burst < 1 then
        lim.burst = lim.requests
    end
    lims[i] = lim
end

-- Evaluate every limit without writing anything.
local res = {}
local allowed = true
for i = 1, n do
    local lim = lims[i]
    local r = {}
    local until_ms = 0
    if lim.block > 0 then
        until_ms = tonumber(redis.call('GET', KEYS[2 * i])) or 0
    end
    if until_ms > now_ms then
        r.ok, r.blocked, r.remaining = false, true, 0
        r.reset = until_ms - now_ms
        r.retry = r.reset
    else
        local algo = algos[lim.algo]
        r.state = algo.load(KEYS[2 * i - 1])
        r.ok, r.remaining, r.reset, r.retry, r.value, r.ttl =
            algo.decide(r.state, lim, now_us, now_ms, cost)
        r.blocked = false
        if cost == 0 then
            r.ok, r.retry = true, 0
        end
    end
    if not r.ok then
        allowed = false
    end
    res[i] = r
end

for i = 1, n do
    local lim, r = lims[i], res[i]
    if allowed then
        if cost > 0 then
            algos[lim.algo].store(KEYS[2 * i - 1], r.value, r.ttl)
        end
    elseif r.ok and cost > 0 then
        -- Nothing is consumed: report this limit as it stands.
        local _
        _, r.remaining, r.reset = algos[lim.algo].decide(r.state, lim, now_us, now_ms, 0)
    elseif not r.ok and not r.blocked and lim.block > 0 and cost > 0 then
        local until_ms = now_ms + lim.block
        redis.call('SET', KEYS[2 * i], string.format('%.0f', until_ms),
            'PX', string.format('%.0f', lim.block))
        r.blocked, r.remaining = true, 0
        r.retry = math.max(r.retry, lim.block)
        r.reset = math.max(r.reset, lim.block)
    end
end

local reply = { now_ms, allowed and 1 or 0 }
for i = 1, n do
    local r = res[i]
    reply[#reply + 1] = r.ok and 1 or 0
    reply[#reply + 1] = r.remaining
    reply[#reply + 1] = r.reset
    reply[#reply + 1] = r.retry
    reply[#reply + 1] = r.blocked and 1 or 0
end
return reply
