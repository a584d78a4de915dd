-- The decision driver: decides one request against every limit of every
-- part (applied policy) and every penalty at once, in one atomic step
-- (protocol v2 in src/store.h):
--   KEYS: per limit 2 (state, block marker), then per penalty 2 (count,
--         block)
--   ARGV = cost (one number, or "c1,c2,..." per part), n, m, then per
--          limit: algo, requests, period_ms, burst,
--          block_ms, part; then per penalty: denials, within_ms, block_ms,
--          mask (bit p-1 = part p opts in)
--   reply { now_ms, allowed, per limit: allowed, remaining,
--           reset_after_ms, retry_after_ms, blocked,
--           per penalty: state (0 none, 1 blocking, 2 started), retry_after_ms }
-- A batch decides several requests in one call, one after another, as if
-- each were its own call at the same instant (a worker coalesces the
-- decisions it starts in one pass of its event loop):
--   ARGV = "batch", count, then each request's ARGV as above
--   KEYS = each request's KEYS, in the same order
--   reply { one reply per request, or an error for that request alone }
-- Order: (1) a live penalty block denies the request, nothing counted, the
-- limits reported as a peek; (2) every limit is evaluated first and state
-- is written only if all admit; (3) on a denial, each penalty whose mask
-- holds a part with a denying limit counts one, and at `denials` blocks.
-- cost 0 is a peek and never writes. A negative cost is a refund: it
-- gives |cost| back (never below empty), never denies, blocks or counts
-- a penalty, and answers as an admit; a request may not mix spending and
-- refunding parts. Time is Redis TIME, shared by every replica.
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

-- Reads the n limits and m penalties of the request whose arguments
-- follow ARGV[ao]. Returns lims, pens, or nil and an error message.
local function read_args(ao, n, m)
    local lims, pens = {}, {}
    for i = 1, n do
        local a = ao + 3 + (i - 1) * 6
        local lim = {
            algo = tonumber(ARGV[a + 1]),
            requests = tonumber(ARGV[a + 2]),
            period = tonumber(ARGV[a + 3]),
            burst = tonumber(ARGV[a + 4]),
            block = tonumber(ARGV[a + 5]),
            part = tonumber(ARGV[a + 6]),
        }
        if not algos[lim.algo] or not lim.requests or lim.requests < 1
            or not lim.period or lim.period < 1 or not lim.block
            or not lim.part or lim.part < 1 or lim.part > 8 then
            return nil, 'ERR ratelimitd: bad limit ' .. i
        end
        if not lim.burst or lim.burst < 1 then
            lim.burst = lim.requests
        end
        lims[i] = lim
    end
    for j = 1, m do
        local a = ao + 3 + n * 6 + (j - 1) * 4
        local pen = {
            denials = tonumber(ARGV[a + 1]),
            within = tonumber(ARGV[a + 2]),
            block = tonumber(ARGV[a + 3]),
            mask = tonumber(ARGV[a + 4]),
        }
        if not pen.denials or pen.denials < 1 or not pen.within
            or pen.within < 1 or not pen.block or pen.block < 1
            or not pen.mask then
            return nil, 'ERR ratelimitd: bad penalty ' .. j
        end
        pens[j] = pen
    end
    return lims, pens
end

-- 1 if bit (part - 1) is set in mask.
local function in_mask(mask, part)
    return math.floor(mask / 2 ^ (part - 1)) % 2 == 1
end

-- The cost of part p: costs is a number (every part's) or a table.
local function part_cost(costs, p)
    if type(costs) == 'table' then
        return costs[p]
    end
    return costs
end

-- Evaluates every limit at its part's cost without writing anything.
-- Returns the per-limit results and whether all admit.
local function evaluate(ko, lims, costs)
    local res = {}
    local allowed = true
    for i = 1, #lims do
        local lim = lims[i]
        local cost = part_cost(costs, lim.part)
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
    return res, allowed
end

-- Writes the outcome of an evaluated request: every state when all
-- admit, else the new blocks of the limits that denied.
local function commit(ko, lims, res, allowed, costs)
    for i = 1, #lims do
        local lim, r = lims[i], res[i]
        local cost = part_cost(costs, lim.part)
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
end

-- Counts one denial on every penalty whose mask holds a part with a
-- denying limit; a penalty at its count starts its block.
local function punish(pko, lims, res, pens, pres)
    for j = 1, #pens do
        local pen, hit = pens[j], false
        for i = 1, #lims do
            if not res[i].ok and in_mask(pen.mask, lims[i].part) then
                hit = true
            end
        end
        if hit then
            local ck, bk = KEYS[pko + 2 * j - 1], KEYS[pko + 2 * j]
            redis.call('SET', ck, '0', 'PX', string.format('%.0f', pen.within), 'NX')
            if redis.call('INCR', ck) >= pen.denials then
                redis.call('SET', bk, string.format('%.0f', now_ms + pen.block),
                    'PX', string.format('%.0f', pen.block))
                redis.call('DEL', ck)
                pres[j] = { 2, pen.block }
            end
        end
    end
end

-- Parses a cost argument: a number, or a comma list of per-part costs.
-- Returns the cost (number or table), whether any is above 0, and
-- whether any is below 0 (a refund); nil when it is not a cost, or when
-- it mixes spending and refunding parts.
local function parse_cost(arg)
    local one = tonumber(arg)
    if one then
        return one, one > 0, one < 0
    end
    local list, counts, refund = {}, false, false
    for c in string.gmatch(arg or '', '[^,]+') do
        local v = tonumber(c)
        if not v then
            return nil
        end
        list[#list + 1] = v
        counts = counts or v > 0
        refund = refund or v < 0
    end
    if #list == 0 or (counts and refund) then
        return nil
    end
    return list, counts, refund
end

-- A refund (every cost <= 0, some < 0): gives |cost| back to each limit
-- of a refunding part, never below empty, and peeks the others. Never
-- denies, blocks or counts a penalty; answers as an admit.
local function refund(ko, lims, costs)
    local res = {}
    for i = 1, #lims do
        local lim = lims[i]
        local cost = part_cost(costs, lim.part)
        local algo = algos[lim.algo]
        local key = KEYS[ko + 2 * i - 1]
        local state = algo.load(key)
        if cost < 0 then
            local ttl
            state, ttl = algo.refund(state, lim, now_us, now_ms, -cost)
            if state == nil then
                redis.call('DEL', key)
            elseif ttl ~= nil then
                algo.store(key, state, ttl)
            end
        end
        local r = { ok = true, blocked = false, retry = 0 }
        local _
        _, r.remaining, r.reset = algo.decide(state, lim, now_us, now_ms, 0)
        res[i] = r
    end
    return res
end

-- Decides the request whose keys follow KEYS[ko] and whose arguments
-- follow ARGV[ao] (its n limits and m penalties were counted by the
-- caller). Returns its reply, or nil and an error message.
local function decide_one(ko, ao, n, m)
    local cost, counts, refunds = parse_cost(ARGV[ao + 1])
    if not cost then
        return nil, 'ERR ratelimitd: bad arguments'
    end
    local lims, pens = read_args(ao, n, m)
    if not lims then
        return nil, pens
    end
    for i = 1, n do
        if not part_cost(cost, lims[i].part) then
            return nil, 'ERR ratelimitd: bad arguments'
        end
    end

    -- (1) A live penalty block denies; nothing is counted.
    local pko = ko + 2 * n
    local pres, blocked = {}, false
    for j = 1, m do
        pres[j] = { 0, 0 }
    end
    for j = 1, refunds and 0 or m do
        local until_ms = tonumber(redis.call('GET', KEYS[pko + 2 * j])) or 0
        if until_ms > now_ms then
            pres[j] = { 1, until_ms - now_ms }
            blocked = true
        end
    end

    local res, allowed
    if refunds then
        res, allowed = refund(ko, lims, cost), true
    elseif blocked then
        res = evaluate(ko, lims, 0)
        allowed = false
    else
        -- (2) Every limit, all or nothing; (3) the penalties on a denial.
        res, allowed = evaluate(ko, lims, cost)
        commit(ko, lims, res, allowed, cost)
        if not allowed and counts then
            punish(pko, lims, res, pens, pres)
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
    for j = 1, m do
        reply[#reply + 1] = pres[j][1]
        reply[#reply + 1] = pres[j][2]
    end
    return reply
end

-- The counts at ARGV[ao + 2] (limits) and ARGV[ao + 3] (penalties), or
-- nil if they are not counts.
local function counts(ao)
    local n, m = tonumber(ARGV[ao + 2]), tonumber(ARGV[ao + 3])
    if not n or n < 1 or n > 32 or n ~= math.floor(n)
        or not m or m < 0 or m > 4 or m ~= math.floor(m) then
        return nil
    end
    return n, m
end

if ARGV[1] ~= 'batch' then
    local n, m = counts(0)
    if not n or #KEYS ~= 2 * n + 2 * m or #ARGV ~= 3 + 6 * n + 4 * m then
        return redis.error_reply('ERR ratelimitd: bad arguments')
    end
    local reply, err = decide_one(0, 0, n, m)
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
    local n, m = counts(ao)
    if not n then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    parts[j] = { ko, ao, n, m }
    ko, ao = ko + 2 * n + 2 * m, ao + 3 + 6 * n + 4 * m
end
if ko ~= #KEYS or ao ~= #ARGV then
    return redis.error_reply('ERR ratelimitd: bad batch')
end
local out = {}
for j = 1, count do
    local p = parts[j]
    local reply, err = decide_one(p[1], p[2], p[3], p[4])
    out[j] = reply or redis.error_reply(err)
end
return out
