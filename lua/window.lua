-- The globals every file after this one uses, as locals: a local (an
-- upvalue inside a function) is one step, a global two table lookups.
local floor, ceil, max = math.floor, math.ceil, math.max
local byte, unpack_bin, pack_bin = string.byte, struct.unpack, struct.pack
local rcall, rpcall = redis.call, redis.pcall

-- Shared by the window algorithms (fixed_window.lua, sliding_window.lua):
-- windows aligned to the epoch, idx = floor(now_ms / period). A state
-- holds the idx of the window it counts, so correctness never depends on
-- key expiry. The callers write idx inline as the exact integer
-- (now_ms - now_ms % period) / period (no function call per limit).
