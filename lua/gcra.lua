-- GCRA (generic cell rate algorithm): the state is the theoretical
-- arrival time TAT, integer microseconds. The emission interval
-- T = ceil(period_us / requests) is an integer, so every step below is
-- exact integer arithmetic in Lua's doubles (all values stay below 2^53).
-- A request of `cost` passes iff (max(TAT, now) + cost*T) - burst*T <= now.
-- A TAT <= now is a full bucket: no state.
--
-- Every algorithm file defines one table of the same fields over its
-- state (a, b, c: numbers; a == false for no state), used by decide.lua:
--   read(v, pos) -> period, a, b, c, until: the entry at v[pos..] of
--           the part's key (decide.lua): algo (1 byte), period_ms (5),
--           the state, block until_ms (6, 0 for none), little-endian
--           unsigned integers (Lua's struct library); <name>_size bytes
--   expiry(a, b, c, period, now_ms) -> the ms at which the state stops
--           mattering (the key's PXAT), or nil if it already has
--   decide(a, b, c, requests, period, burst, now_us, now_ms, cost) ->
--           ok, remaining, reset_after_ms, retry_after_ms, new a, b, c
--           (pure)
--   refund(a, b, c, requests, period, now_us, now_ms, amount) -> a, b, c
-- and, outside the table, <name>_layout: the entry's struct layout (no
-- '<'), fields algo, period, its <name>_fields state fields (a; a, b; or
-- a, b, c), until; decide.lua packs all of a part's entries with one
-- struct.pack of the layouts joined.
-- GCRA's state is the TAT (7 bytes). A part whose only state is its first
-- limit's GCRA TAT is stored more compactly (decide.lua): value 0..999
-- (one of Redis's shared integers: no value object) with PXAT, TAT =
-- PEXPIRETIME*1000 - value.

-- The bytes, layout and state fields of one entry (gcra_read's).
local gcra_layout, gcra_fields = 'BI5I7I6', 1
local gcra_size = 19

-- Makes the algorithm's table (decide.lua makes each once, when the
-- library loads).
local function gcra()
    local function gcra_expiry(tat, b, c, period, now_ms)
        local exp_ms = ceil(tat / 1000)
        if exp_ms <= now_ms then
            return nil
        end
        return exp_ms
    end

    local function gcra_decide(tat, b, c, requests, period, burst, now_us,
                               now_ms, cost)
        local t = ceil(period * 1000 / requests)
        if not tat or tat < now_us then
            tat = now_us
        end
        local new_tat = tat + cost * t
        local allow_at = new_tat - burst * t
        if cost <= burst and allow_at <= now_us then
            local remaining = floor((now_us - allow_at) / t)
            local reset = ceil((new_tat - now_us) / 1000)
            return true, remaining, reset, 0, new_tat, 0, 0
        end
        local remaining = floor((now_us - (tat - burst * t)) / t)
        if remaining < 0 then
            remaining = 0
        end
        local reset = ceil((tat - now_us) / 1000)
        local retry
        if cost > burst then
            retry = reset
            if retry <= 0 then
                retry = period
            end
        else
            retry = ceil((allow_at - now_us) / 1000)
        end
        return false, remaining, reset, retry, false, 0, 0
    end

    -- TAT = max(TAT - amount*T, now): a TAT at or before now is no state.
    local function gcra_refund(tat, b, c, requests, period, now_us, now_ms,
                               amount)
        if not tat then
            return false, 0, 0
        end
        tat = tat - amount * ceil(period * 1000 / requests)
        if tat <= now_us then
            return false, 0, 0
        end
        return tat, 0, 0
    end

    local function gcra_read(v, pos)
        local _, per, tat, u = unpack_bin('<BI5I7I6', v, pos)
        return per, tat, 0, 0, u
    end

    return {
        read = gcra_read,
        expiry = gcra_expiry, decide = gcra_decide,
        refund = gcra_refund
    }
end
