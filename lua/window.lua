-- The script is a Redis Function library (FUNCTION LOAD once, FCALL per
-- decision): its functions and tables are made once, when it loads, not
-- on every call as an EVAL script's are. A library loads without the
-- standard libraries and the redis API, so the globals every file after
-- this one uses are locals bound at the first call (bind_globals, from
-- decide.lua's entry point): a local (an upvalue inside a function) is
-- one step, a global two table lookups.
--
-- Numbers go to redis.call as strings made here: Redis turns a number
-- argument into a string with printf's %.17g, about 0.3 us for a 13-digit
-- time in ms (glibc's exact float printing), against 0.1 us for
-- format('%d') (exact: every value is an integer below 2^53). SMALL[v + 1]
-- is the string of v for 0..999 (a lone GCRA key's value), made once.
local floor, ceil, max, byte, unpack_bin, pack_bin, rcall, rpcall, format
local SMALL = {}

local function bind_globals()
    floor, ceil, max = math.floor, math.ceil, math.max
    byte, unpack_bin, pack_bin = string.byte, struct.unpack, struct.pack
    rcall, rpcall, format = redis.call, redis.pcall, string.format
    for v = 0, 999 do
        SMALL[v + 1] = format('%d', v)
    end
end

-- Shared by the window algorithms (fixed_window.lua, sliding_window.lua):
-- windows aligned to the epoch, idx = floor(now_ms / period). A state
-- holds the idx of the window it counts, so correctness never depends on
-- key expiry. The callers write idx inline as the exact integer
-- (now_ms - now_ms % period) / period (no function call per limit).
