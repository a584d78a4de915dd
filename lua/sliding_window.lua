-- Sliding window: the previous window's count, weighted by the part of it
-- still inside the sliding period, plus the current window's count:
--   estimate = prev * (period - elapsed) / period + cur
-- Every test is done multiplied by period, in exact integers.
-- Value: "<idx>:<prev>:<cur>" with PX until the end of the next window.
-- Returns ok, remaining, reset_after_ms, retry_after_ms, value, ttl_ms.
local function sliding_window_decide(state_str, lim, now_us, now_ms, cost)
    local period = lim.period
    local requests = lim.requests
    local idx = math.floor(now_ms / period)
    local elapsed = now_ms - idx * period
    local left = period - elapsed
    local prev, cur = 0, 0
    if state_str then
        local sidx, sprev, scur = string.match(state_str, '^(%-?%d+):(%d+):(%d+)$')
        sidx = tonumber(sidx)
        if sidx == idx then
            prev, cur = tonumber(sprev), tonumber(scur)
        elseif sidx == idx - 1 then
            prev = tonumber(scur)
        end
    end
    local ok = prev * left + (cur + cost) * period <= requests * period
    local cur_after = cur
    if ok then
        cur_after = cur + cost
    end
    local remaining = math.floor((requests * period - prev * left - cur_after * period) / period)
    if remaining < 0 then
        remaining = 0
    end
    local reset = 0
    if cur_after > 0 then
        reset = left + period
    elseif prev > 0 then
        reset = left
    end
    if ok then
        return true, remaining, reset, 0,
            string.format('%.0f:%.0f:%.0f', idx, prev, cur_after), left + period
    end
    local retry
    if cost > requests then
        retry = reset
        if retry <= 0 then
            retry = period
        end
    elseif cur + cost <= requests then
        -- prev's weight decays enough inside this window
        retry = left - math.floor((requests - cur - cost) * period / prev)
    else
        -- next window: prev' = cur, cur' = 0
        local wait = period - math.floor((requests - cost) * period / cur)
        if wait < 0 then
            wait = 0
        end
        retry = left + wait
    end
    if retry < 1 then
        retry = 1
    end
    return false, remaining, reset, retry, nil, 0
end

-- Gives back `amount` (> 0) in the current window only: cur =
-- max(cur - amount, 0), prev unchanged. Returns the new value and its
-- ttl_ms (nil ttl: leave the key as it is).
local function sliding_window_refund(state_str, lim, now_us, now_ms, amount)
    local idx = math.floor(now_ms / lim.period)
    local sidx, sprev, scur =
        string.match(state_str or '', '^(%-?%d+):(%d+):(%d+)$')
    if not sidx or tonumber(sidx) ~= idx then
        return state_str, nil
    end
    local cur = math.max(tonumber(scur) - amount, 0)
    return string.format('%.0f:%.0f:%.0f', idx, tonumber(sprev), cur),
        (idx + 2) * lim.period - now_ms
end

local sliding_window = {
    load = window_load, decide = sliding_window_decide, store = window_store,
    refund = sliding_window_refund
}
