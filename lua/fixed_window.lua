-- Fixed window (functions as in gcra.lua): a = the window's idx, b = its
-- count; text "<idx>:<count>"; it matters until the window ends.

local function fixed_window_expiry(idx, count, c, period, now_ms)
    if idx ~= math.floor(now_ms / period) then
        return nil
    end
    return (idx + 1) * period
end

local function fixed_window_decide(idx, count, c, requests, period, burst,
                                   now_us, now_ms, cost)
    local cur = math.floor(now_ms / period)
    if idx ~= cur then
        count = 0
    end
    local reset = (cur + 1) * period - now_ms
    if count + cost <= requests then
        return true, requests - count - cost, reset, 0, cur, count + cost, 0
    end
    local remaining = requests - count
    if remaining < 0 then
        remaining = 0
    end
    return false, remaining, reset, reset, false, 0, 0
end

-- count = max(count - amount, 0), in the current window only.
local function fixed_window_refund(idx, count, c, requests, period, now_us,
                                   now_ms, amount)
    if idx ~= math.floor(now_ms / period) or count <= amount then
        return false, 0, 0
    end
    return idx, count - amount, 0
end

local function fixed_window_format(idx, count, c)
    return string.format('%d:%d', idx, count)
end

local fixed_window = {
    read = window_read2, expiry = fixed_window_expiry,
    decide = fixed_window_decide, refund = fixed_window_refund,
    format = fixed_window_format
}
