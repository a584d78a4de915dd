-- GCRA (generic cell rate algorithm): the state is the theoretical
-- arrival time TAT, integer microseconds. The emission interval
-- T = ceil(period_us / requests) is an integer, so every step below is
-- exact integer arithmetic in Lua's doubles (all values stay below 2^53).
-- A request of `cost` passes iff (max(TAT, now) + cost*T) - burst*T <= now.
--
-- Storage: TAT lives mostly in the key's expiry. With
--   exp_ms = ceil(TAT / 1000)   and   value = exp_ms*1000 - TAT  (0..999)
-- the key is SET to value with PXAT exp_ms, and TAT = PEXPIRETIME*1000 -
-- value, exact to the microsecond. The key expires when the bucket is full
-- again (TAT <= now), so a missing key is a full bucket. A value below
-- 10000 is one of Redis's shared integers: no value object per key.
-- PEXPIRETIME needs Redis >= 7.0.

-- Reads the TAT stored under key: a number, or nil for a full bucket.
local function gcra_load(key)
    local v = redis.call('GET', key)
    if not v then
        return nil
    end
    return redis.call('PEXPIRETIME', key) * 1000 - tonumber(v)
end

-- Stores tat (as gcra_decide returned it) under key; ttl_ms is unused,
-- the expiry is derived from tat itself.
local function gcra_store(key, tat, ttl_ms)
    local exp_ms = math.ceil(tat / 1000)
    redis.call('SET', key, string.format('%.0f', exp_ms * 1000 - tat),
        'PXAT', string.format('%.0f', exp_ms))
end

-- Decides a request of `cost` against the stored TAT (number or nil).
-- Returns ok, remaining, reset_after_ms, retry_after_ms, new_tat;
-- new_tat is nil when nothing would be stored. Writes nothing itself.
local function gcra_decide(tat, lim, now_us, now_ms, cost)
    local t = math.ceil(lim.period * 1000 / lim.requests)
    local burst = lim.burst
    tat = tat or now_us
    if tat < now_us then
        tat = now_us
    end
    local new_tat = tat + cost * t
    local allow_at = new_tat - burst * t
    if cost <= burst and allow_at <= now_us then
        local remaining = math.floor((now_us - allow_at) / t)
        local reset = math.ceil((new_tat - now_us) / 1000)
        return true, remaining, reset, 0, new_tat
    end
    local remaining = math.floor((now_us - (tat - burst * t)) / t)
    if remaining < 0 then
        remaining = 0
    end
    local reset = math.ceil((tat - now_us) / 1000)
    local retry
    if cost > burst then
        retry = reset
        if retry <= 0 then
            retry = lim.period
        end
    else
        retry = math.ceil((allow_at - now_us) / 1000)
    end
    return false, remaining, reset, retry, nil
end

-- Gives back `amount` (> 0) to the stored TAT (number or nil): TAT =
-- max(TAT - amount*T, now). Returns the new TAT, or nil for a full bucket
-- (the key is then deleted).
local function gcra_refund(tat, lim, now_us, now_ms, amount)
    if not tat then
        return nil
    end
    local t = math.ceil(lim.period * 1000 / lim.requests)
    tat = tat - amount * t
    if tat <= now_us then
        return nil
    end
    return tat, 0
end

local gcra = {
    load = gcra_load, decide = gcra_decide, store = gcra_store,
    refund = gcra_refund
}
