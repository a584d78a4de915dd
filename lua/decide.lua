-- The decision driver: decides one request against every limit of a
-- policy at once (protocol in src/store.h):
--   KEYS[2i-1] state of limit i, KEYS[2i] its block marker
--   ARGV = cost, n, then per limit: algo, requests, period_ms, burst, block_ms
--   reply { now_ms, allowed, per limit: allowed, remaining,
--           reset_after_ms, retry_after_ms, blocked }
-- A batch decides several requests in one call, one after another, as if
-- each were its own call at the same instant (a worker coalesces the
-- decisions it starts in one pass of its event loop):
--   ARGV = "batch", count, then each request's ARGV as above
--   KEYS = each request's KEYS, in the same order
--   reply { one reply per request, or an error for that request alone }
-- All-or-nothing: every limit is evaluated first; state is written only
-- if all admit. cost 0 is a peek and never writes. Time is Redis TIME,
-- shared by every replica.
--
-- Each algorithm is a table of three steps, defined in its own file:
-- load(key) -> state or nil (a fresh limit); decide(state, lim, now_us,
-- now_ms, cost) -> ok, remaining, reset_after_ms, retry_after_ms,
-- new_state, ttl_ms (pure); and store(key, new_state, ttl_ms). GCRA keeps
-- its TAT in the key's expiry (gcra.lua); the window algorithms keep a
-- string value with PX ttl_ms (window.lua).
-- A block marker is "<until_ms>" with PX block_ms.

-- The algorithms by script id: one row each, the ids of src/algo.h's
-- rows (the wire protocol of src/store.h).
local algos = {
    [0] = gcra,
    [1] = fixed_window,
    [2] = sliding_window,
}

local time = redis.call('TIME')
local sec, usec = tonumber(time[1]), tonumber(time[2])
local now_us = sec * 1000000 + usec
local now_ms = sec * 1000 + math.floor(usec / 1000)

-- Decides the request whose keys follow KEYS[ko] and whose arguments
-- follow ARGV[ao] (its n limits were checked by the caller). Returns its
-- reply, or nil and an error message.
local function decide_one(ko, ao, n)
    local cost = tonumber(ARGV[ao + 1])
    if not cost or cost < 0 then
        return nil, 'ERR ratelimitd: bad arguments'
    end

    local lims = {}
    for i = 1, n do
        local a = ao + 2 + (i - 1) * 5
        local lim = {
            algo = tonumber(ARGV[a + 1]),
            requests = tonumber(ARGV[a + 2]),
            period = tonumber(ARGV[a + 3]),
            burst = tonumber(ARGV[a + 4]),
            block = tonumber(ARGV[a + 5]),
        }
        if not algos[lim.algo] or not lim.requests or lim.requests < 1
            or not lim.period or lim.period < 1 or not lim.block then
            return nil, 'ERR ratelimitd: bad limit ' .. i
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
            until_ms = tonumber(redis.call('GET', KEYS[ko + 2 * i])) or 0
        end
        if until_ms > now_ms then
            r.ok, r.blocked, r.remaining = false, true, 0
            r.reset = until_ms - now_ms
            r.retry = r.reset
        else
            local algo = algos[lim.algo]
            r.state = algo.load(KEYS[ko + 2 * i - 1])
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
                algos[lim.algo].store(KEYS[ko + 2 * i - 1], r.value, r.ttl)
            end
        elseif r.ok and cost > 0 then
            -- Nothing is consumed: report this limit as it stands.
            local _
            _, r.remaining, r.reset = algos[lim.algo].decide(r.state, lim, now_us, now_ms, 0)
        elseif not r.ok and not r.blocked and lim.block > 0 and cost > 0 then
            local until_ms = now_ms + lim.block
            redis.call('SET', KEYS[ko + 2 * i], string.format('%.0f', until_ms),
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
end

-- The number of limits at ARGV[ao + 2], or nil if it is not one.
local function limit_count(ao)
    local n = tonumber(ARGV[ao + 2])
    if not n or n < 1 or n ~= math.floor(n) then
        return nil
    end
    return n
end

if ARGV[1] ~= 'batch' then
    local n = limit_count(0)
    if not n or #KEYS ~= 2 * n or #ARGV ~= 2 + 5 * n then
        return redis.error_reply('ERR ratelimitd: bad arguments')
    end
    local reply, err = decide_one(0, 0, n)
    if not reply then
        return redis.error_reply(err)
    end
    return reply
end

-- A batch: its layout is checked whole before anything is decided.
local count = tonumber(ARGV[2])
if not count or count < 1 then
    return redis.error_reply('ERR ratelimitd: bad batch')
end
local ko, ao = 0, 2
local parts = {}
for j = 1, count do
    local n = limit_count(ao)
    if not n then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    parts[j] = { ko, ao, n }
    ko, ao = ko + 2 * n, ao + 2 + 5 * n
end
if ko ~= #KEYS or ao ~= #ARGV then
    return redis.error_reply('ERR ratelimitd: bad batch')
end
local out = {}
for j = 1, count do
    local p = parts[j]
    local reply, err = decide_one(p[1], p[2], p[3])
    out[j] = reply or redis.error_reply(err)
end
return out
