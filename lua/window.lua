-- Shared by the window algorithms (fixed_window.lua, sliding_window.lua):
-- windows aligned to the epoch, idx = floor(now_ms / period). A state
-- holds the idx of the window it counts, so correctness never depends on
-- key expiry.

-- The index of the window now_ms falls in.
local function window_idx(period, now_ms)
    return math.floor(now_ms / period)
end
