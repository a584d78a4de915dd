-- Fixed window: windows aligned to the epoch, idx = floor(now_ms/period).
-- Value: "<idx>:<count>" with PX until the window ends. The stored idx is
-- always compared, so correctness never depends on key expiry.
-- Returns ok, remaining, reset_after_ms, retry_after_ms, value, ttl_ms.
local function fixed_window_decide(state_str, lim, now_us, now_ms, cost)
    local idx = math.floor(now_ms / lim.period)
    local count = 0
    if state_str then
        local sidx, scount = string.match(state_str, '^(%-?%d+):(%d+)$')
        if sidx and tonumber(sidx) == idx then
            count = tonumber(scount)
        end
    end
    local reset = (idx + 1) * lim.period - now_ms
    if count + cost <= lim.requests then
        local after = count + cost
        return true, lim.requests - after, reset, 0,
            string.format('%.0f:%.0f', idx, after), reset
    end
    local remaining = lim.requests - count
    if remaining < 0 then
        remaining = 0
    end
    return false, remaining, reset, reset, nil, 0
end

-- Gives back `amount` (> 0) in the current window only: count =
-- max(count - amount, 0). Returns the new value and its ttl_ms, or nil
-- when nothing is left to count (the key is then deleted).
local function fixed_window_refund(state_str, lim, now_us, now_ms, amount)
    local idx = math.floor(now_ms / lim.period)
    local sidx, scount = string.match(state_str or '', '^(%-?%d+):(%d+)$')
    if not sidx or tonumber(sidx) ~= idx then
        return state_str, nil
    end
    local count = tonumber(scount) - amount
    if count <= 0 then
        return nil
    end
    return string.format('%.0f:%.0f', idx, count),
        (idx + 1) * lim.period - now_ms
end

local fixed_window = {
    load = window_load, decide = fixed_window_decide, store = window_store,
    refund = fixed_window_refund
}
