-- The call's keys and arguments, set by call_args on every call: key k
-- is K[kb + k] (nk of them), argument j is A[ab + j] (na of them);
-- not_run prefixes the error of a request whose read failed.
--
-- The cluster batch (exec helper; see src/redis_exec.h). Redis 7.0
-- answers CROSSSLOT to declared keys of several slots even with the
-- allow-cross-slot-keys flag, and lets a function touch undeclared keys
-- of every slot its node serves. So a batch for one cluster master
-- declares no keys and carries them in its arguments:
--   args = "keys", nkeys, key.., then the batch form ("batch", count, ..)
-- Nothing is probed up front: decide.lua reads every key of a request
-- before it writes any, and a read of a key this node does not serve now
-- (its slot moved, or is migrating and the key is not here) fails that
-- request alone, with nothing of it run, as "NOTLOCAL ..." in its place in
-- the reply; the caller sends those decisions alone, with their declared
-- keys, so MOVED and ASK apply. The offsets let the rest of the library
-- read both forms alike, with nothing copied.
local K, kb, nk, A, ab, na, not_run

-- Sets them from FCALL's keys and args. Returns an error reply for a
-- cluster form whose key count does not add up, else nothing.
local function call_args(keys, args)
    if args[1] ~= 'keys' then
        K, kb, nk, A, ab, na, not_run = keys, 0, #keys, args, 0, #args, ''
        return nil
    end
    local n = tonumber(args[2])
    if not n or n < 0 or n ~= floor(n) or #args < 2 + n then
        return redis.error_reply('ERR ratelimitd: bad batch')
    end
    K, kb, nk, A, ab, na = args, 2, n, args, 2 + n, #args - 2 - n
    not_run = 'NOTLOCAL '
    return nil
end
