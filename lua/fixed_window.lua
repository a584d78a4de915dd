-- Fixed window (fields as in gcra.lua): a = the window's idx (6 bytes),
-- b = its count (7 bytes); it matters until the window ends.

-- The bytes, layout and state fields of one entry (fixed_window_read's).
local fixed_window_layout, fixed_window_fields = 'BI5I6I7I6', 2
local fixed_window_size = 25

-- Makes the algorithm's table (decide.lua makes each once, when the
-- library loads).
local function fixed_window()
    local function fixed_window_expiry(idx, count, c, period, now_ms)
        if idx ~= (now_ms - now_ms % period) / period then
            return nil
        end
        return (idx + 1) * period
    end

    local function fixed_window_decide(idx, count, c, requests, period, burst,
                                       now_us, now_ms, cost)
        local cur = (now_ms - now_ms % period) / period
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
        if idx ~= (now_ms - now_ms % period) / period or count <= amount then
            return false, 0, 0
        end
        return idx, count - amount, 0
    end

    local function fixed_window_read(v, pos)
        local _, per, idx, count, u = unpack_bin('<BI5I6I7I6', v, pos)
        return per, idx, count, 0, u
    end

    return {
        read = fixed_window_read,
        expiry = fixed_window_expiry,
        decide = fixed_window_decide, refund = fixed_window_refund
    }
end
