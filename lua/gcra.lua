-- GCRA (generic cell rate algorithm): the state is the theoretical
-- arrival time TAT, integer microseconds. The emission interval
-- T = ceil(period_us / requests) is an integer, so every step below is
-- exact integer arithmetic in Lua's doubles (all values stay below 2^53).
-- A request of `cost` passes iff (max(TAT, now) + cost*T) - burst*T <= now.
-- Value: "<tat>" with PX until the bucket is full again.
-- Returns ok, remaining, reset_after_ms, retry_after_ms, value, ttl_ms;
-- value is nil when nothing would be stored. Writes nothing itself.
local function gcra(state_str, lim, now_us, now_ms, cost)
    local t = math.ceil(lim.period * 1000 / lim.requests)
    local burst = lim.burst
    local tat = tonumber(state_str) or now_us
    if tat < now_us then
        tat = now_us
    end
    local new_tat = tat + cost * t
    local allow_at = new_tat - burst * t
    if cost <= burst and allow_at <= now_us then
        local remaining = math.floor((now_us - allow_at) / t)
        local reset = math.ceil((new_tat - now_us) / 1000)
        return true, remaining, reset, 0, string.format('%.0f', new_tat), reset
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
    return false, remaining, reset, retry, nil, 0
end

