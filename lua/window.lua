-- Shared by the window algorithms (fixed_window.lua, sliding_window.lua):
-- windows aligned to the epoch, idx = floor(now_ms / period). The state's
-- text starts with the idx of the window it counts, so correctness never
-- depends on key expiry.

-- The idx and count written at v[s..] as "<idx>:<count>" (a == false if
-- there is none), and the position after them.
local function window_read2(v, s)
    local _, e, idx, n = string.find(v, '^(%-?%d+):(%d+)', s)
    if not idx then
        return false, 0, 0, s
    end
    return tonumber(idx), tonumber(n), 0, e + 1
end
