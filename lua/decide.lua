-- The decision driver: decides one request against every limit of every
-- part (applied policy) and every penalty at once, in one atomic step
-- (protocol v3 in src/store.h), as FCALL <library name> numkeys KEYS ARGV:
--   KEYS: per part 1 (the state of all its limits), then per penalty 1
--   ARGV = one binary request, little-endian (Lua's struct layouts):
--          '<BB' P parts, M penalties; per part '<Bi8' n limits, its cost;
--          per limit '<BI7I5I7I5' algo, requests, period_ms, burst,
--          block_ms; per penalty '<I7I5I5B' denials, within_ms, block_ms,
--          mask (bit p-1 = part p opts in)
--   reply = one binary string, little-endian: '<I6B' now_ms, allowed;
--          per limit 'BI7I6I6B' allowed, remaining, reset_after_ms,
--          retry_after_ms, blocked; per penalty 'BI6' state (0 none,
--          1 blocking, 2 started), retry_after_ms. Within conf.c's
--          bounds every value fits its width (remaining <= burst < 2^53,
--          every ms below 2^43); reset and retry are clamped to 2^48 - 1
--          ms all the same (a GCRA key written past those bounds).
-- A batch decides several requests in one call, one after another, as if
-- each were its own call at the same instant (a worker coalesces the
-- decisions it starts in one pass of its event loop):
--   ARGV = "batch", count, then each request's binary request
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
-- mattering), or deleted when none matters any more. Its value is either
--   "<v>"  (0..999, decimal) the first limit is a GCRA, the only state:
--          TAT = PEXPIRETIME*1000 - v (a shared integer: the smallest key)
-- or one binary entry per limit with state or a block (the algorithm
-- files give each layout): algo (1 byte), period_ms (5), the state, the
-- block's until_ms (6, 0 for none), little-endian. A limit finds its
-- entry by algorithm and period (what its key suffix names), so a reload
-- keeps the state of an unchanged limit; a new or changed one finds
-- nothing and starts fresh; an entry no limit names any more is dropped
-- at the next write. A penalty's key holds its denial count (PX
-- within_ms from the first denial) or, while it blocks, -<until ms>.

-- The algorithms by script id: one row each, the ids of src/algo.h's
-- rows (the wire protocol of src/store.h).
local algos = {
    [0] = gcra(),
    [1] = fixed_window(),
    [2] = sliding_window(),
}
local gcra_decide = algos[0].decide

-- The call's time (Redis TIME, read once per call), set by decide.
local now_us, now_ms

-- Each algorithm's entry: its bytes, layout and state fields.
local sizes = {
    [0] = gcra_size,
    [1] = fixed_window_size,
    [2] = sliding_window_size,
}
local layouts = {
    [0] = gcra_layout,
    [1] = fixed_window_layout,
    [2] = sliding_window_layout,
}
local nfields = {
    [0] = gcra_fields,
    [1] = fixed_window_fields,
    [2] = sliding_window_fields,
}

-- One request in three flat arrays, reused by every request and every
-- call: no table per limit or per decision. Limit i's fields are
-- L[(i - 1) * 18 + f], every part's limits in turn:
--    1 algo      2 requests  3 period_ms  4 burst    5 block_ms  6 part
--    7 a         8 b         9 c          10 block until_ms (its state;
--                                            a == false: none)
--   11 ok       12 remaining 13 reset     14 retry   15 blocked (result)
--   16-18 the state an admit leaves (a, b, c)
-- Part p's are PT[(p - 1) * 5 + f]: 1 first limit, 2 n limits, 3 cost,
-- 4 dirty (to write), 5 the key's expiry as read (false: no key; 0:
-- unknown; else at least the latest expiry among the entries read, so a
-- write whose own latest is the same keeps the key's TTL: SET KEEPTTL
-- costs Redis less than half of SET PXAT). Penalty j's are QT[(j - 1) * 7 + f]:
-- 1 denials, 2 within_ms, 3 block_ms, 4 mask, 5 its count (nil: none),
-- 6 reply state, 7 reply retry_after_ms. PF[p] is the struct layout of
-- part p's value when every limit has an entry.
local L = { false, false, false, false, false, false, false, false, false,
    false, false, false, false, false, false, false, false, false }
local PT, QT, PF, batch_at = { false, false, false, false, false }, {}, {}, {}
local R = {}
-- The request whose fields L, PT and QT hold: { request, n, counts,
-- refunds } (read_request's results), request false for none. It stays
-- from one call to the next: a policy's requests are the same string.
local RQ = { false, 0, false, false }

-- Reads the request r (a binary string, store.h) into the arrays.
-- Returns the limit count, whether any part's cost is above 0 and
-- whether any is below 0; or nil and an error message (a bad limit or
-- penalty, or costs that mix spending and refunding).
local function read_request(L, PT, QT, r)
    local np, m = byte(r, 1, 2)
    local pos, i, counts, refunds = 3, 0, false, false
    for p = 1, np do
        local q = (p - 1) * 5
        local n, cost = unpack_bin('<Bi8', r, pos)
        PT[q + 1], PT[q + 2], PT[q + 3] = i + 1, n, cost
        counts, refunds = counts or cost > 0, refunds or cost < 0
        pos = pos + 9
        local fmt = '<'
        for _ = 1, n do
            local o = i * 18
            i = i + 1
            local algo, req, per, burst, block =
                unpack_bin('<BI7I5I7I5', r, pos)
            if not algos[algo] or req < 1 or per < 1 then
                return nil, 'ERR ratelimitd: bad limit ' .. i
            end
            if burst < 1 then
                burst = req
            end
            L[o + 1], L[o + 2], L[o + 3] = algo, req, per
            L[o + 4], L[o + 5], L[o + 6] = burst, block, p
            fmt = fmt .. layouts[algo]
            pos = pos + 25
        end
        PF[p] = fmt
    end
    for j = 1, m do
        local q = (j - 1) * 7
        local den, within, block, mask = unpack_bin('<I7I5I5B', r, pos)
        if den < 1 or within < 1 or block < 1 then
            return nil, 'ERR ratelimitd: bad penalty ' .. j
        end
        QT[q + 1], QT[q + 2], QT[q + 3], QT[q + 4] = den, within, block, mask
        pos = pos + 18
    end
    if counts and refunds then
        return nil, 'ERR ratelimitd: bad arguments'
    end
    return i, counts, refunds
end

-- Reads part p's key (K[kb + k]) into the state of its limits: each entry
-- to the limit of its algorithm and period; a state that no longer
-- matters is none, and so is a block that is over or no longer
-- configured. Returns the error of a failed read (nothing is written
-- before every read of a request is done), else nothing.
local function read_part(L, PT, p, k, now_ms)
    local q = (p - 1) * 5
    local first, last = PT[q + 1], PT[q + 1] + PT[q + 2] - 1
    for o = (first - 1) * 18, (last - 1) * 18, 18 do
        L[o + 7], L[o + 8], L[o + 9], L[o + 10] = false, 0, 0, 0
    end
    local v = rpcall('GET', K[kb + k])
    if type(v) == 'table' then
        return v.err
    end
    PT[q + 4], PT[q + 5] = false, v and 0
    if not v then
        return
    end
    local len, fo = #v, (first - 1) * 18
    if len <= 3 then
        local frac = tonumber(v)
        if frac and L[fo + 1] == 0 then
            local pxat = rcall('PEXPIRETIME', K[kb + k])
            L[fo + 7], PT[q + 5] = pxat * 1000 - frac, pxat
        end
        return
    end
    local ttl = 0
    local pos = 1
    while pos <= len do
        local id = byte(v, pos)
        local algo, size = algos[id], sizes[id]
        if not size or pos + size - 1 > len then
            PT[q + 5] = ttl
            return
        end
        if algo then -- else no limit uses it now: the entry is dropped
            local per, a, b, c, u = algo.read(v, pos)
            for o = fo, (last - 1) * 18, 18 do
                if L[o + 1] == id and L[o + 3] == per then
                    local e = algo.expiry(a, b, c, per, now_ms)
                    if not e then
                        a = false
                    elseif e > ttl then
                        ttl = e
                    end
                    L[o + 7], L[o + 8], L[o + 9] = a, b, c
                    if L[o + 5] > 0 and u > now_ms then
                        L[o + 10] = u
                        if u > ttl then
                            ttl = u
                        end
                    end
                    break
                end
            end
        end
        pos = pos + size
    end
    PT[q + 5] = ttl
end

-- Writes part p's key (K[kb + k]) from the state of its limits: the
-- compact GCRA form when it applies, else an entry for each limit whose
-- state or block still matters, packed at once (W is scratch for the
-- fields); the key is deleted when none does.
local function write_part(L, PT, W, p, k, now_ms)
    local q = (p - 1) * 5
    local fo, lo = (PT[q + 1] - 1) * 18, (PT[q + 1] + PT[q + 2] - 2) * 18
    -- One pass: each limit's expiry, and its entry into W as if every
    -- limit keeps one (the usual case; else W is made again below).
    local exp, lone, all, w = 0, true, true, 0
    for o = fo, lo, 18 do
        local algo, a, u = L[o + 1], L[o + 7], L[o + 10]
        local e = a and algos[algo].expiry(a, L[o + 8], L[o + 9], L[o + 3],
            now_ms)
        if e then
            if e > exp then
                exp = e
            end
        else
            L[o + 7], a = false, false
        end
        if u > exp then
            exp = u
        end
        if e or u > 0 then
            if o > fo or u > 0 or algo ~= 0 then
                lone = false
            end
            local nf = nfields[algo]
            W[w + 1], W[w + 2], W[w + 3] = algo, L[o + 3], a or 0
            W[w + 4], W[w + 5] = L[o + 8], L[o + 9]
            W[w + nf + 3] = u
            w = w + nf + 3
        else
            all = false
        end
    end
    if exp == 0 then
        if PT[q + 5] then
            rcall('DEL', K[kb + k])
        end
        return
    end
    if lone then
        local tat = L[fo + 7]
        local exp_ms = ceil(tat / 1000)
        rcall('SET', K[kb + k], SMALL[exp_ms * 1000 - tat + 1], 'PXAT',
            format('%d', exp_ms))
        return
    end
    local fmt = PF[p]
    if not all then
        fmt = '<'
        for o = fo, lo, 18 do
            if L[o + 7] or L[o + 10] > 0 then
                fmt = fmt .. layouts[L[o + 1]]
            end
        end
    end
    if exp == PT[q + 5] then
        rcall('SET', K[kb + k], pack_bin(fmt, unpack(W, 1, w)), 'KEEPTTL')
    else
        rcall('SET', K[kb + k], pack_bin(fmt, unpack(W, 1, w)), 'PXAT',
            format('%d', exp))
    end
end

-- Evaluates limit i at cost without writing: its result and, when it
-- admits, the state it would leave. Returns whether it admits.
local function evaluate(L, i, cost, now_us, now_ms)
    local o = (i - 1) * 18
    local u = L[o + 10]
    if u > now_ms then
        L[o + 11], L[o + 15], L[o + 12] = false, true, 0
        L[o + 13], L[o + 14] = u - now_ms, u - now_ms
        return false
    end
    local ok, rem, reset, retry, a, b, c = algos[L[o + 1]].decide(L[o + 7],
        L[o + 8], L[o + 9], L[o + 2], L[o + 3], L[o + 4], now_us, now_ms, cost)
    if cost == 0 then
        ok, retry = true, 0
    end
    L[o + 11], L[o + 12], L[o + 13], L[o + 14] = ok, rem, reset, retry
    L[o + 15], L[o + 16], L[o + 17], L[o + 18] = false, a, b, c
    return ok
end

-- Writes the outcome of an evaluated request of n limits into the state:
-- every new state when all admit, else the new blocks of the limits that
-- denied.
local function commit(L, PT, n, allowed, now_us, now_ms)
    for i = 1, n do
        local o = (i - 1) * 18
        local q = (L[o + 6] - 1) * 5
        local cost = PT[q + 3]
        if cost > 0 and allowed then
            L[o + 7], L[o + 8], L[o + 9] = L[o + 16], L[o + 17], L[o + 18]
            PT[q + 4] = true
        elseif cost > 0 and L[o + 11] then
            -- Nothing is consumed: report this limit as it stands.
            evaluate(L, i, 0, now_us, now_ms)
        elseif cost > 0 and not L[o + 15] and L[o + 5] > 0 then
            local block = L[o + 5]
            L[o + 10] = now_ms + block
            PT[q + 4] = true
            L[o + 15], L[o + 12] = true, 0
            L[o + 14] = max(L[o + 14], block)
            L[o + 13] = max(L[o + 13], block)
        end
    end
end

-- A refund: gives |cost| back to each limit of a refunding part and
-- reports every limit as a peek would, admitted.
local function refund(L, PT, n, now_us, now_ms)
    for i = 1, n do
        local o = (i - 1) * 18
        local q = (L[o + 6] - 1) * 5
        if PT[q + 3] < 0 then
            L[o + 7], L[o + 8], L[o + 9] = algos[L[o + 1]].refund(L[o + 7],
                L[o + 8], L[o + 9], L[o + 2], L[o + 3], now_us, now_ms,
                -PT[q + 3])
            PT[q + 4] = true
        end
        local _
        _, L[o + 12], L[o + 13] = algos[L[o + 1]].decide(L[o + 7], L[o + 8],
            L[o + 9], L[o + 2], L[o + 3], L[o + 4], now_us, now_ms, 0)
        L[o + 11], L[o + 14], L[o + 15] = true, 0, false
    end
end

-- Counts one denial on every penalty whose mask holds a part with a
-- denying limit (their keys follow KEYS[pko]); a penalty at its count
-- starts its block.
local function punish(L, QT, pko, n, m, now_ms)
    for j = 1, m do
        local q, hit = (j - 1) * 7, false
        for o = 0, (n - 1) * 18, 18 do
            if not L[o + 11]
                and floor(QT[q + 4] / 2 ^ (L[o + 6] - 1)) % 2 == 1 then
                hit = true
            end
        end
        if hit then
            local key, count = K[kb + pko + j], (QT[q + 5] or 0) + 1
            if count >= QT[q + 1] then
                rcall('SET', key, format('%d', -(now_ms + QT[q + 3])), 'PX',
                    format('%d', QT[q + 3]))
                QT[q + 6], QT[q + 7] = 2, QT[q + 3]
            elseif QT[q + 5] then
                rcall('SET', key, format('%d', count), 'KEEPTTL')
            else
                rcall('SET', key, '1', 'PX', format('%d', QT[q + 2]))
            end
        end
    end
end

-- Reads the penalties of a request (their keys follow KEYS[pko]), unless
-- it is a refund. Returns whether a live block denies it, or nil and
-- the error of a failed read.
local function read_penalties(QT, pko, m, refunds, now_ms)
    local blocked = false
    for j = 1, m do
        local q = (j - 1) * 7
        QT[q + 5], QT[q + 6], QT[q + 7] = nil, 0, 0
        if not refunds then
            local v = rpcall('GET', K[kb + pko + j])
            if type(v) == 'table' then
                return nil, v.err
            end
            v = tonumber(v)
            if v and v < 0 then
                if -v > now_ms then
                    QT[q + 6], QT[q + 7] = 1, -v - now_ms
                    blocked = true
                end
                v = nil
            end
            QT[q + 5] = v
        end
    end
    return blocked
end

-- The reply of a decided request of n limits and m penalties: one
-- binary string (the header's layout), packed in one step from R
-- (scratch) with the layout of (n, m), made once per call and kept in
-- reply_layouts[n * 5 + m] (a string built per decision costs Redis
-- about 0.4 us). reset and retry are clamped to their 6 bytes.
local reply_layouts = {}
local function reply_of(L, QT, R, n, m, allowed, now_ms)
    R[1], R[2] = now_ms, allowed and 1 or 0
    local r = 2
    for o = 0, (n - 1) * 18, 18 do
        local reset, retry = L[o + 13], L[o + 14]
        if reset > 281474976710655 then
            reset = 281474976710655
        end
        if retry > 281474976710655 then
            retry = 281474976710655
        end
        R[r + 1], R[r + 2] = L[o + 11] and 1 or 0, L[o + 12]
        R[r + 3], R[r + 4], R[r + 5] = reset, retry, L[o + 15] and 1 or 0
        r = r + 5
    end
    for q = 0, (m - 1) * 7, 7 do
        R[r + 1], R[r + 2] = QT[q + 6], QT[q + 7]
        r = r + 2
    end
    local fmt = reply_layouts[n * 5 + m]
    if not fmt then
        fmt = '<I6B' .. string.rep('BI7I6I6B', n) .. string.rep('BI6', m)
        reply_layouts[n * 5 + m] = fmt
    end
    return pack_bin(fmt, unpack(R, 1, r))
end

-- Decides request r (its np parts' and m penalties' keys follow
-- KEYS[ko]). Returns its reply, or nil and an error message. A request
-- equal to the one before it (a batch of one policy: Lua's strings are
-- interned, so == is one comparison) reuses what read_request left in
-- L, PT and QT: nothing else writes those fields.
local function decide_one(ko, r, np, m)
    local n, counts, refunds
    if r == RQ[1] then
        n, counts, refunds = RQ[2], RQ[3], RQ[4]
    else
        RQ[1] = false
        n, counts, refunds = read_request(L, PT, QT, r)
        if not n then
            return nil, counts
        end
        RQ[1], RQ[2], RQ[3], RQ[4] = r, n, counts, refunds
    end
    for p = 1, np do
        local err = read_part(L, PT, p, ko + p, now_ms)
        if err then
            return nil, not_run .. err
        end
    end
    -- (1) A live penalty block denies; nothing is counted.
    local blocked, err = read_penalties(QT, ko + np, m, refunds, now_ms)
    if err then
        return nil, not_run .. err
    end
    local allowed = true
    if refunds then
        refund(L, PT, n, now_us, now_ms)
    elseif blocked then
        for i = 1, n do
            evaluate(L, i, 0, now_us, now_ms)
        end
        allowed = false
    else
        -- (2) Every limit, all or nothing; (3) the penalties on a denial.
        for i = 1, n do
            if not evaluate(L, i, PT[(L[(i - 1) * 18 + 6] - 1) * 5 + 3],
                now_us, now_ms) then
                allowed = false
            end
        end
        commit(L, PT, n, allowed, now_us, now_ms)
        if not allowed and counts then
            punish(L, QT, ko + np, n, m, now_ms)
        end
    end
    for p = 1, np do
        if PT[(p - 1) * 5 + 4] then
            write_part(L, PT, R, p, ko + p, now_ms)
        end
    end
    return reply_of(L, QT, R, n, m, allowed, now_ms)
end

-- The most common request: one GCRA limit without a block or a penalty,
-- whose key is absent or in the compact form. decide_lone(key, r) decides
-- request r on its one key exactly as decide_one would (test_lua.py
-- compares them), with no table traffic: its reply; or nil when r is not
-- such a request (decide_one decides it), or false and the error of a
-- failed read. LR holds the last request's fields (a batch of one policy
-- repeats one string).
-- A missing key is a full bucket, which admits any cost from 1 to the
-- burst: that answer and its new state are known before the read, so a
-- client under its limit (its key expired since its last request) costs
-- one SET NX GET, which writes them only if the key is missing and
-- otherwise just returns the value. On a cluster every redis.call also
-- checks its key's slot, so one call fewer is measurable there.
local LR = { false, 0, 0, 0, 0 }
local function decide_lone(key, r)
    local cost, req, per, burst
    if r == LR[1] then
        cost, req, per, burst = LR[2], LR[3], LR[4], LR[5]
    else
        if #r ~= 36 or byte(r, 1) ~= 1 or byte(r, 2) ~= 0
            or byte(r, 3) ~= 1 or byte(r, 12) ~= 0 then
            return nil
        end
        local _, block
        _, _, _, cost, _, req, per, burst, block =
            unpack_bin('<BBBi8BI7I5I7I5', r)
        if cost < 0 or block ~= 0 or req < 1 or per < 1 then
            return nil
        end
        if burst < 1 then
            burst = req
        end
        LR[1], LR[2], LR[3], LR[4], LR[5] = r, cost, req, per, burst
    end
    local ok, rem, reset, retry, new_tat, v, exp_ms
    if cost >= 1 and cost <= burst then -- allowed if the key is missing
        ok, rem, reset, retry, new_tat = gcra_decide(false, 0, 0, req, per,
            burst, now_us, now_ms, cost)
        exp_ms = ceil(new_tat / 1000)
        v = rpcall('SET', key, SMALL[exp_ms * 1000 - new_tat + 1], 'PXAT',
            format('%d', exp_ms), 'NX', 'GET')
    else
        v = rpcall('GET', key)
    end
    if type(v) == 'table' then
        return false, not_run .. v.err
    elseif v then
        if #v > 3 or not tonumber(v) then
            return nil
        end
        ok, rem, reset, retry, new_tat = gcra_decide(
            rcall('PEXPIRETIME', key) * 1000 - tonumber(v), 0, 0, req, per,
            burst, now_us, now_ms, cost)
        if ok and cost > 0 then
            exp_ms = ceil(new_tat / 1000)
            rcall('SET', key, SMALL[exp_ms * 1000 - new_tat + 1], 'PXAT',
                format('%d', exp_ms))
        end
    elseif not ok then -- missing, and a cost of 0 or past the burst
        ok, rem, reset, retry = gcra_decide(false, 0, 0, req, per, burst,
            now_us, now_ms, cost)
    end
    if cost == 0 then
        ok, retry = true, 0
    end
    ok = ok and 1 or 0
    return pack_bin('<I6BBI7I6I6B', now_ms, ok, ok, rem,
        reset < 281474976710655 and reset or 281474976710655,
        retry < 281474976710655 and retry or 281474976710655, 0)
end

-- The short ways, or false: test_lua.py builds the library with "local
-- lone, compiled = false, false" to check that the general path decides
-- alike.
local lone, compiled = decide_lone, compile_part

-- The compiled functions by their requests' limits (the bytes after the
-- cost; false: not such a request): at most 256, then the table starts
-- again, at most once a minute (past that a new one takes the general
-- path), so requests of ever new limits cannot make every call compile
-- (about 60 us each). LC is the last request decide_short saw: { request,
-- its function or false, its cost }.
local COMPILED, ncompiled, compiled_at = {}, 0, 0
local LC = { false, false, 0 }

-- The compiled function for request r's limits, made when it is missing.
local function compiled_of(r)
    local lims = string.sub(r, 12)
    local f = COMPILED[lims]
    if f ~= nil then
        return f
    end
    if ncompiled == 256 then
        if now_ms - compiled_at < 60000 then
            return false
        end
        COMPILED, ncompiled = {}, 0
    end
    if ncompiled == 0 then
        compiled_at = now_ms
    end
    f = compiled(r, algos, nfields, layouts)
    COMPILED[lims], ncompiled = f, ncompiled + 1
    return f
end

-- Decides request r of one part and no penalty on its one key the short
-- way when there is one: decide_lone, or its limits' compiled function.
-- Returns as they do: a reply; nil (decide_one decides r); or false and
-- an error.
local function decide_short(key, r)
    if lone then
        local reply, err = lone(key, r)
        if reply ~= nil then
            return reply, err
        end
    end
    if not compiled then
        return nil
    end
    local f, cost = LC[2], LC[3]
    if r ~= LC[1] then
        f, cost = false, 0
        if #r >= 36 and byte(r, 1) == 1 and byte(r, 2) == 0 then
            f, cost = compiled_of(r), unpack_bin('<i8', r, 4)
        end
        LC[1], LC[2], LC[3] = r, f, cost
    end
    if f and cost >= 1 then
        return f(key, cost, now_us, now_ms, not_run)
    end
    return nil
end

-- The parts and penalties of request r, or nil when r is not laid out as
-- store.h says (1..8 parts of 1..8 limits, 32 in all, 0..4 penalties,
-- nothing more).
local function layout(r)
    if type(r) ~= 'string' or #r < 2 then
        return nil
    end
    local np, m = byte(r, 1, 2)
    if np < 1 or np > 8 or m > 4 then
        return nil
    end
    local pos, total = 3, 0
    for _ = 1, np do
        local n = byte(r, pos)
        if not n or n < 1 or n > 8 then
            return nil
        end
        total = total + n
        pos = pos + 9 + 25 * n
    end
    if total > 32 or pos + 18 * m ~= #r + 1 then
        return nil
    end
    return np, m
end

-- The library's function (embed_lua.sh registers it under the library's
-- name): decides one request, or a batch.
local function decide(keys, args)
    if not rcall then
        bind_globals()
    end
    local bad = call_args(keys, args)
    if bad then
        return bad
    end
    local time = rcall('TIME')
    now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
    now_ms = floor(now_us / 1000)

    if na == 1 and nk == 1 then
        local reply, err = decide_short(K[kb + 1], A[ab + 1])
        if reply then
            return reply
        elseif reply == false then
            return redis.error_reply(err)
        end
    end

    if A[ab + 1] ~= 'batch' then
        local np, m = layout(A[ab + 1])
        if not np or nk ~= np + m or na ~= 1 then
            return redis.error_reply('ERR ratelimitd: bad arguments')
        end
        local reply, err = decide_one(0, A[ab + 1], np, m)
        if not reply then
            return redis.error_reply(err)
        end
        return reply
    end

    -- A batch: its layout is checked whole before anything is decided.
    local count = tonumber(A[ab + 2])
    if not count or count < 1 or na ~= count + 2 then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    local ko = 0
    local np, m, prev = nil, nil, false
    for j = 1, count do
        if A[ab + j + 2] ~= prev then
            prev = A[ab + j + 2]
            np, m = layout(prev)
        end
        if not np then
            return redis.error_reply('ERR ratelimitd: bad batch')
        end
        batch_at[3 * j - 2], batch_at[3 * j - 1], batch_at[3 * j] = ko, np, m
        ko = ko + np + m
    end
    if ko ~= nk then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    local out = {}
    for j = 1, count do
        local ko, r, np, m = batch_at[3 * j - 2], A[ab + j + 2],
            batch_at[3 * j - 1], batch_at[3 * j]
        local reply, err
        if np == 1 and m == 0 then
            reply, err = decide_short(K[kb + ko + 1], r)
        end
        if reply == nil then
            reply, err = decide_one(ko, r, np, m)
        end
        out[j] = reply or redis.error_reply(err)
    end
    return out
end
