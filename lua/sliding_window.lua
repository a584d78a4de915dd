-- Sliding window (fields as in gcra.lua): the previous window's count,
-- weighted by the part of it still inside the sliding period, plus the
-- current window's count:
--   estimate = prev * (period - elapsed) / period + cur
-- Every test is done multiplied by period, in exact integers.
-- State (fields as in gcra.lua): a = idx (6 bytes), b = prev, c = cur (7
-- bytes each); it matters until the end of the next window (its cur is
-- then the prev).

-- The bytes, layout and state fields of one entry (sliding_window_read's).
local sliding_window_layout, sliding_window_fields = 'BI5I6I7I7I6', 3
local sliding_window_size = 32

-- Makes the algorithm's table (decide.lua makes each once, when the
-- library loads).
local function sliding_window()
    local function sliding_window_expiry(idx, prev, cur, period, now_ms)
        if idx < (now_ms - now_ms % period) / period - 1 then
            return nil
        end
        return (idx + 2) * period
    end

    local function sliding_window_decide(sidx, sprev, scur, requests, period,
                                         burst, now_us, now_ms, cost)
        local idx = (now_ms - now_ms % period) / period
        local left = period - (now_ms - idx * period)
        local prev, cur = 0, 0
        if sidx == idx then
            prev, cur = sprev, scur
        elseif sidx == idx - 1 then
            prev = scur
        end
        local ok = prev * left + (cur + cost) * period <= requests * period
        local cur_after = cur
        if ok then
            cur_after = cur + cost
        end
        local remaining = floor((requests * period - prev * left
            - cur_after * period) / period)
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
            return true, remaining, reset, 0, idx, prev, cur_after
        end
        local retry
        if cost > requests then
            retry = reset
            if retry <= 0 then
                retry = period
            end
        elseif cur + cost <= requests then
            -- prev's weight decays enough inside this window
            retry = left - floor((requests - cur - cost) * period / prev)
        else
            -- next window: prev' = cur, cur' = 0
            local wait = period - floor((requests - cost) * period / cur)
            if wait < 0 then
                wait = 0
            end
            retry = left + wait
        end
        if retry < 1 then
            retry = 1
        end
        return false, remaining, reset, retry, false, 0, 0
    end

    -- cur = max(cur - amount, 0) in the current window only; prev stays.
    local function sliding_window_refund(idx, prev, cur, requests, period,
                                         now_us, now_ms, amount)
        if idx ~= (now_ms - now_ms % period) / period then
            return idx, prev, cur
        end
        cur = cur - amount
        if cur < 0 then
            cur = 0
        end
        if prev == 0 and cur == 0 then
            return false, 0, 0
        end
        return idx, prev, cur
    end

    local function sliding_window_read(v, pos)
        local _, per, idx, prev, cur, u = unpack_bin('<BI5I6I7I7I6', v, pos)
        return per, idx, prev, cur, u
    end

    return {
        read = sliding_window_read,
        expiry = sliding_window_expiry,
        decide = sliding_window_decide, refund = sliding_window_refund
    }
end
