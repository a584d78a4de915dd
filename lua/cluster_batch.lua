-- The cluster batch (exec helper; see src/redis_exec.h). Redis 7.0
-- answers CROSSSLOT to declared KEYS of several slots even with the
-- allow-cross-slot-keys flag, and lets a script touch undeclared keys of
-- every slot its node serves. So a batch for one cluster master declares
-- no keys and carries them in ARGV:
--   ARGV = "keys", nkeys, key.., then the batch form ("batch", count, ..)
-- Nothing is probed up front: decide.lua reads every key of a request
-- before it writes any, and a read of a key this node does not serve now
-- (its slot moved, or is migrating and the key is not here) fails that
-- request alone, with nothing of it run, as "NOTLOCAL ..." in its place in
-- the reply; the caller sends those decisions alone, with their declared
-- keys, so MOVED and ASK apply. The rest of the script reads KEYS and ARGV
-- through these locals, so it sees the plain batch form; not_run prefixes
-- such a failed read.
local KEYS, ARGV, not_run = KEYS, ARGV, ''
if ARGV[1] == 'keys' then
    local nk = tonumber(ARGV[2])
    if not nk or nk < 0 or #ARGV < 2 + nk then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    local keys, argv = {}, {}
    for i = 1, nk do
        keys[i] = ARGV[2 + i]
    end
    for i = 3 + nk, #ARGV do
        argv[#argv + 1] = ARGV[i]
    end
    KEYS, ARGV, not_run = keys, argv, 'NOTLOCAL '
end
