-- The decision driver: decides one request against every limit of every
-- part (applied policy) and every penalty at once, in one atomic step
-- (protocol v3 in src/store.h):
--   KEYS: per part 1 (the state of all its limits), then per penalty 1
--   ARGV = cost (one number, or "c1,c2,..." per part), P parts, M
--          penalties, then per part: n limits, then per limit: algo, id,
--          requests, period_ms, burst, block_ms; then per penalty:
--          denials, within_ms, block_ms, mask (bit p-1 = part p opts in)
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
-- refunding parts. Time is Redis TIME, read once per call (batch
-- included), shared by every replica.
--
-- A part's key holds every limit's state and block, read with one GET and
-- written with at most one SET (PXAT: when the last of them stops
-- mattering). Its value is either
--   "<v>"  (0..999) the first limit is a GCRA, the only state: TAT =
--          PEXPIRETIME*1000 - v (a shared integer: the smallest key)
-- or entries separated by ",": the first limit's without a name (the key
-- name carries its id), every other one as "<id>=":
--   <state>[/<block until ms>]   (state: the algorithm's text, may be empty)
-- e.g. "1796127481440123,f1m=29935458:12,f1h=498924:80/1796127482000".
-- A limit is found by its id (algorithm and period: rl_limit_t.suffix),
-- so a reload keeps the state of an unchanged limit; a new or changed
-- one finds nothing and starts fresh; an entry no limit names any more is
-- dropped at the next write. A penalty's key holds its denial count (PX
-- within_ms from the first denial) or, while it blocks, -<until ms>.

-- The algorithms by script id: one row each, the ids of src/algo.h's
-- rows (the wire protocol of src/store.h).
local algos = {
    [0] = gcra,
    [1] = fixed_window,
    [2] = sliding_window,
}
local GCRA = 0

local find, format, tonumber = string.find, string.format, tonumber
local floor, ceil = math.floor, math.ceil
local call = redis.call

local time = call('TIME')
local sec, usec = tonumber(time[1]), tonumber(time[2])
local now_us = sec * 1000000 + usec
local now_ms = sec * 1000 + floor(usec / 1000)

-- One request's limits, parts and penalties in flat arrays, indexed by
-- limit i (every part's in turn), part p or penalty j; filled by
-- read_args, reused by every request of a batch (no table per decision).
local L_algo, L_id, L_req, L_per, L_burst, L_block, L_part =
    {}, {}, {}, {}, {}, {}, {}
local S_a, S_b, S_c, S_until = {}, {}, {}, {} -- state (S_a false: none)
local R_ok, R_rem, R_reset, R_retry, R_blk = {}, {}, {}, {}, {}
local P_first, P_n, P_cost, P_dirty, P_had = {}, {}, {}, {}, {}
local Q_den, Q_within, Q_block, Q_mask, Q_val = {}, {}, {}, {}, {}
local parts_list, pieces, pres = {}, {}, {}

-- Reads the cost argument into P_cost[1..np]: one number for every part
-- or a comma list with at least np entries. Returns whether any cost is
-- above 0 and whether any is below 0, or nil when it is not a cost or
-- mixes spending and refunding.
local function read_cost(arg, np)
    local one = tonumber(arg)
    local counts, refund = false, false
    if one then
        for p = 1, np do
            P_cost[p] = one
        end
        return one > 0, one < 0
    end
    local p = 0
    for c in string.gmatch(arg or '', '[^,]+') do
        local v = tonumber(c)
        if not v then
            return nil
        end
        p = p + 1
        P_cost[p] = v
        counts = counts or v > 0
        refund = refund or v < 0
    end
    if p < np or (counts and refund) then
        return nil
    end
    return counts, refund
end

-- Reads the np parts and m penalties of the request whose arguments
-- follow ARGV[ao] into the arrays. Returns the limit count, or nil and an
-- error message.
local function read_args(ao, np, m)
    local a, i = ao + 4, 0
    for p = 1, np do
        local n = tonumber(ARGV[a])
        P_first[p], P_n[p] = i + 1, n
        a = a + 1
        for _ = 1, n do
            i = i + 1
            local algo, req = tonumber(ARGV[a]), tonumber(ARGV[a + 2])
            local per, block = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 5])
            local burst = tonumber(ARGV[a + 4])
            if not algos[algo] or not req or req < 1 or not per or per < 1
                or not block or ARGV[a + 1] == '' then
                return nil, 'ERR ratelimitd: bad limit ' .. i
            end
            if not burst or burst < 1 then
                burst = req
            end
            L_algo[i], L_id[i], L_req[i], L_per[i] = algo, ARGV[a + 1], req, per
            L_burst[i], L_block[i], L_part[i] = burst, block, p
            a = a + 6
        end
    end
    for j = 1, m do
        local den, within = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
        local block, mask = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
        if not den or den < 1 or not within or within < 1 or not block
            or block < 1 or not mask then
            return nil, 'ERR ratelimitd: bad penalty ' .. j
        end
        Q_den[j], Q_within[j], Q_block[j], Q_mask[j] = den, within, block, mask
        a = a + 4
    end
    return i
end

-- Reads limit i's entry, which starts at v[s] (its state, then
-- "/<until>"), into S_*: a state that no longer matters is none, and so
-- is a block that is over or no longer configured.
local function read_entry(i, v, s)
    local algo = algos[L_algo[i]]
    local a, b, c, e = algo.read(v, s)
    if a and not algo.expiry(a, b, c, L_per[i], now_ms) then
        a = false
    end
    S_a[i], S_b[i], S_c[i], S_until[i] = a, b, c, 0
    if L_block[i] > 0 and find(v, '^/', e) then
        local _, _, u = find(v, '^/(%d+)', e)
        u = tonumber(u)
        if u and u > now_ms then
            S_until[i] = u
        end
    end
end

-- Reads part p's key (KEYS[k]) into the state of its limits.
local function read_part(p, k)
    local first, last = P_first[p], P_first[p] + P_n[p] - 1
    for i = first, last do
        S_a[i], S_until[i] = false, 0
    end
    local v = call('GET', KEYS[k])
    P_had[p], P_dirty[p] = v and true or false, false
    if not v then
        return
    end
    if L_algo[first] == GCRA and #v <= 3 and find(v, '^%d+$') then
        S_a[first] = call('PEXPIRETIME', KEYS[k]) * 1000 - tonumber(v)
        S_b[first], S_c[first] = 0, 0
        return
    end
    read_entry(first, v, 1)
    local pos = 1
    for i = first + 1, last do
        -- entries are written in limit order: look right after the last
        -- one found, then anywhere
        local id = L_id[i]
        local s = find(v, ',' .. id .. '=', pos, true)
        if not s and pos > 1 then
            s = find(v, ',' .. id .. '=', 1, true)
        end
        if s then
            pos = s + #id + 2
            read_entry(i, v, pos)
        end
    end
end

-- Writes part p's key (KEYS[k]) from the state of its limits: the
-- compact GCRA form when it applies, else every entry that still
-- matters; the key is deleted when none does.
local function write_part(p, k)
    local first, last = P_first[p], P_first[p] + P_n[p] - 1
    local exp, np, only_first = 0, 0, true
    for i = first, last do
        local a, u = S_a[i], S_until[i]
        local text = ''
        if a then
            local algo = algos[L_algo[i]]
            local e = algo.expiry(a, S_b[i], S_c[i], L_per[i], now_ms)
            if e then
                text = algo.format(a, S_b[i], S_c[i])
                if e > exp then
                    exp = e
                end
            end
        end
        if u > 0 then
            text = text .. '/' .. format('%d', u)
            if u > exp then
                exp = u
            end
        end
        if text ~= '' and (i > first or u > 0) then
            only_first = false
        end
        if i == first then
            np = 1
            pieces[1] = text
        elseif text ~= '' then
            np = np + 1
            pieces[np] = ',' .. L_id[i] .. '=' .. text
        end
    end
    if exp == 0 then
        if P_had[p] then
            call('DEL', KEYS[k])
        end
    elseif only_first and L_algo[first] == GCRA then
        local tat = S_a[first]
        local exp_ms = ceil(tat / 1000)
        call('SET', KEYS[k], format('%d', exp_ms * 1000 - tat), 'PXAT',
            format('%d', exp_ms))
    else
        call('SET', KEYS[k], table.concat(pieces, '', 1, np), 'PXAT',
            format('%d', exp))
    end
end

-- Evaluates limit i at cost without writing: R_* and, when it admits
-- with cost > 0, the state it would leave in new_*.
local new_a, new_b, new_c = {}, {}, {}
local function evaluate(i, cost)
    local u = S_until[i]
    if u > now_ms then
        R_ok[i], R_blk[i], R_rem[i] = false, true, 0
        R_reset[i], R_retry[i] = u - now_ms, u - now_ms
        return
    end
    local ok, rem, reset, retry, a, b, c = algos[L_algo[i]].decide(S_a[i],
        S_b[i], S_c[i], L_req[i], L_per[i], L_burst[i], now_us, now_ms, cost)
    if cost == 0 then
        ok, retry = true, 0
    end
    R_ok[i], R_rem[i], R_reset[i], R_retry[i], R_blk[i] =
        ok, rem, reset, retry, false
    new_a[i], new_b[i], new_c[i] = a, b, c
end

-- Writes the outcome of an evaluated request into the state: every new
-- state when all admit, else the new blocks of the limits that denied.
local function commit(n, allowed)
    for i = 1, n do
        local p = L_part[i]
        local cost = P_cost[p]
        if allowed then
            if cost > 0 then
                S_a[i], S_b[i], S_c[i] = new_a[i], new_b[i], new_c[i]
                P_dirty[p] = true
            end
        elseif R_ok[i] and cost > 0 then
            -- Nothing is consumed: report this limit as it stands.
            local _
            _, R_rem[i], R_reset[i] = algos[L_algo[i]].decide(S_a[i], S_b[i],
                S_c[i], L_req[i], L_per[i], L_burst[i], now_us, now_ms, 0)
        elseif not R_ok[i] and not R_blk[i] and L_block[i] > 0
            and cost > 0 then
            S_until[i] = now_ms + L_block[i]
            P_dirty[p] = true
            R_blk[i], R_rem[i] = true, 0
            R_retry[i] = math.max(R_retry[i], L_block[i])
            R_reset[i] = math.max(R_reset[i], L_block[i])
        end
    end
end

-- A refund: gives |cost| back to each limit of a refunding part and
-- reports every limit as a peek would, admitted.
local function refund(n)
    for i = 1, n do
        local p = L_part[i]
        local cost = P_cost[p]
        local algo = algos[L_algo[i]]
        if cost < 0 then
            S_a[i], S_b[i], S_c[i] = algo.refund(S_a[i], S_b[i], S_c[i],
                L_req[i], L_per[i], now_us, now_ms, -cost)
            P_dirty[p] = true
        end
        local _
        _, R_rem[i], R_reset[i] = algo.decide(S_a[i], S_b[i], S_c[i],
            L_req[i], L_per[i], L_burst[i], now_us, now_ms, 0)
        R_ok[i], R_retry[i], R_blk[i] = true, 0, false
    end
end

-- Counts one denial on every penalty whose mask holds a part with a
-- denying limit; a penalty at its count starts its block. pres holds
-- each penalty's reply pair at pres[2j-1], pres[2j].
local function punish(pko, n, m)
    for j = 1, m do
        local hit = false
        for i = 1, n do
            if not R_ok[i] and floor(Q_mask[j] / 2 ^ (L_part[i] - 1)) % 2 == 1 then
                hit = true
            end
        end
        if hit then
            local key, count = KEYS[pko + j], (Q_val[j] or 0) + 1
            if count >= Q_den[j] then
                call('SET', key, format('%d', -(now_ms + Q_block[j])), 'PX',
                    format('%d', Q_block[j]))
                pres[2 * j - 1], pres[2 * j] = 2, Q_block[j]
            elseif Q_val[j] then
                call('SET', key, format('%d', count), 'KEEPTTL')
            else
                call('SET', key, '1', 'PX', format('%d', Q_within[j]))
            end
        end
    end
end

-- Decides the request whose keys follow KEYS[ko] and whose arguments
-- follow ARGV[ao] (its np parts and m penalties were counted by the
-- caller). Returns its reply, or nil and an error message.
local function decide_one(ko, ao, np, m)
    local counts, refunds = read_cost(ARGV[ao + 1], np)
    if counts == nil then
        return nil, 'ERR ratelimitd: bad arguments'
    end
    local n, err = read_args(ao, np, m)
    if not n then
        return nil, err
    end
    for p = 1, np do
        read_part(p, ko + p)
    end

    -- (1) A live penalty block denies; nothing is counted.
    local pko = ko + np
    local blocked = false
    for j = 1, m do
        pres[2 * j - 1], pres[2 * j] = 0, 0
        if not refunds then
            local v = tonumber(call('GET', KEYS[pko + j]))
            if v and v < 0 then
                if -v > now_ms then
                    pres[2 * j - 1], pres[2 * j] = 1, -v - now_ms
                    blocked = true
                end
                v = nil
            end
            Q_val[j] = v
        end
    end

    local allowed = true
    if refunds then
        refund(n)
    elseif blocked then
        for i = 1, n do
            evaluate(i, 0)
        end
        allowed = false
    else
        -- (2) Every limit, all or nothing; (3) the penalties on a denial.
        for i = 1, n do
            evaluate(i, P_cost[L_part[i]])
            allowed = allowed and R_ok[i]
        end
        commit(n, allowed)
        if not allowed and counts then
            punish(pko, n, m)
        end
    end
    for p = 1, np do
        if P_dirty[p] then
            write_part(p, ko + p)
        end
    end

    local reply = { now_ms, allowed and 1 or 0 }
    local r = 2
    for i = 1, n do
        reply[r + 1] = R_ok[i] and 1 or 0
        reply[r + 2] = R_rem[i]
        reply[r + 3] = R_reset[i]
        reply[r + 4] = R_retry[i]
        reply[r + 5] = R_blk[i] and 1 or 0
        r = r + 5
    end
    for j = 1, 2 * m do
        reply[r + j] = pres[j]
    end
    return reply
end

-- The layout of the request whose arguments follow ARGV[ao]: its part
-- and penalty counts and the number of its arguments, or nil if they are
-- not counts (at most 8 parts of 1..8 limits, 32 in all, 4 penalties).
local function layout(ao)
    local np, m = tonumber(ARGV[ao + 2]), tonumber(ARGV[ao + 3])
    if not np or np < 1 or np > 8 or np ~= floor(np)
        or not m or m < 0 or m > 4 or m ~= floor(m) then
        return nil
    end
    local a, total = ao + 4, 0
    for _ = 1, np do
        local n = tonumber(ARGV[a])
        if not n or n < 1 or n > 8 or n ~= floor(n) then
            return nil
        end
        total = total + n
        a = a + 1 + 6 * n
    end
    if total > 32 then
        return nil
    end
    return np, m, a + 4 * m - 1 - ao
end

if ARGV[1] ~= 'batch' then
    local np, m, nargs = layout(0)
    if not np or #KEYS ~= np + m or #ARGV ~= nargs then
        return redis.error_reply('ERR ratelimitd: bad arguments')
    end
    local reply, err = decide_one(0, 0, np, m)
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
for j = 1, count do
    local np, m, nargs = layout(ao)
    if not np or ao + nargs > #ARGV then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    parts_list[4 * j - 3], parts_list[4 * j - 2] = ko, ao
    parts_list[4 * j - 1], parts_list[4 * j] = np, m
    ko, ao = ko + np + m, ao + nargs
end
if ko ~= #KEYS or ao ~= #ARGV then
    return redis.error_reply('ERR ratelimitd: bad batch')
end
local out = {}
for j = 1, count do
    local reply, err = decide_one(parts_list[4 * j - 3], parts_list[4 * j - 2],
        parts_list[4 * j - 1], parts_list[4 * j])
    out[j] = reply or redis.error_reply(err)
end
return out
