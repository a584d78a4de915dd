-- The script is a Redis Function library (FUNCTION LOAD once, FCALL per
-- decision): its functions and tables are made once, when it loads, not
-- on every call as an EVAL script's are. A library loads without the
-- standard libraries and the redis API, so the globals every file after
-- this one uses are locals bound at the first call (bind_globals, from
-- decide.lua's entry point): a local (an upvalue inside a function) is
-- one step, a global two table lookups.
local floor, ceil, max, byte, unpack_bin, pack_bin, rcall, rpcall

local function bind_globals()
    floor, ceil, max = math.floor, math.ceil, math.max
    byte, unpack_bin, pack_bin = string.byte, struct.unpack, struct.pack
    rcall, rpcall = redis.call, redis.pcall
end

-- Shared by the window algorithms (fixed_window.lua, sliding_window.lua):
-- windows aligned to the epoch, idx = floor(now_ms / period). A state
-- holds the idx of the window it counts, so correctness never depends on
-- key expiry. The callers write idx inline as the exact integer
-- (now_ms - now_ms % period) / period (no function call per limit).
