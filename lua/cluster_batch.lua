-- The cluster batch (exec helper; see src/redis_exec.h). Redis 7.0
-- answers CROSSSLOT to declared KEYS of several slots even with the
-- allow-cross-slot-keys flag, and lets a script touch undeclared keys of
-- every slot its node serves. So a batch for one cluster master declares
-- no keys and carries them in ARGV:
--   ARGV = "keys", nkeys, key.., then the batch form ("batch", count, ..)
-- Every key is probed before anything is written: one this node does not
-- serve now (its slot moved, or is migrating and the key is not here)
-- answers "NOTLOCAL ..." for the whole call, with nothing run; the caller
-- then sends each decision alone, with its declared keys, so MOVED and
-- ASK apply. The rest of the script reads KEYS and ARGV through these
-- locals, so it sees the plain batch form.
local KEYS, ARGV = KEYS, ARGV
if ARGV[1] == 'keys' then
    local nk = tonumber(ARGV[2])
    if not nk or nk < 0 or #ARGV < 2 + nk then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    local keys, argv, seen = {}, {}, {}
    for i = 1, nk do
        local k = ARGV[2 + i]
        if not seen[k] then
            seen[k] = true
            local r = redis.pcall('EXISTS', k)
            if type(r) == 'table' and r.err then
                return redis.error_reply('NOTLOCAL ' .. r.err)
            end
        end
        keys[i] = k
    end
    for i = 3 + nk, #ARGV do
        argv[#argv + 1] = ARGV[i]
    end
    KEYS, ARGV = keys, argv
end
