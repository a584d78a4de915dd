-- Compiled parts: a request of one part, no penalty, a cost of at least 1
-- and limits without a block (the usual multi-limit policy, or one window
-- limit), decided by a function made once for its limits (loadstring; the
-- cost is an argument) and kept across calls. Its limits' parameters are
-- constants and their states locals, where the general path (decide.lua)
-- goes through the L and PT arrays with a call per step; the algorithm
-- functions it calls are the general path's own. It decides exactly as
-- the general path does (test_lua.py compares them) on a key that is
-- absent or holds one entry per limit in the request's order, which is
-- how every admit leaves it; on any other key it answers nil before
-- anything is written, and the general path decides. A lone GCRA limit
-- is decide_lone's (its key has the compact form). The source holds only
-- the request's integers (format %d) and fixed names, never its bytes.

-- One limit's fields in the generated source: its entry's state fields
-- (a; a, b; or a, b, c: the algorithm's <name>_fields) by their names.
local state_names = { 'a', 'b', 'c' }

-- Lines of the function for limits lims ({ algo, requests, period, burst
-- } each, with nf and layout from the algorithm tables).
local function compiled_source(lims, nfields, layouts)
    local out, n = {}, #lims
    local function add(s)
        out[#out + 1] = s
    end
    local fmt, reply, entry, vals, checks = '<', '<I6B', {}, {}, {}
    local args = {}
    for i = 1, n do
        local l = lims[i]
        fmt = fmt .. layouts[l[1]]
        reply = reply .. 'BI7I6I6B'
        args[#args + 1] = 'D' .. i .. ', E' .. i
        local read = { 'i' .. i, 'p' .. i }
        local put = { format('%d', l[1]), format('%d', l[3]) }
        for f = 1, nfields[l[1]] do
            read[#read + 1] = 'x' .. i .. state_names[f]
            put[#put + 1] = 'n' .. i .. state_names[f]
        end
        read[#read + 1] = 'u' .. i
        put[#put + 1] = '0'
        entry[i] = table.concat(read, ', ')
        vals[i] = table.concat(put, ', ')
        checks[i] = format('i%d ~= %d or p%d ~= %d', i, l[1], i, l[3])
    end
    add('local ' .. table.concat(args, ', ')
        .. ', rpcall, rcall, unpack_bin, pack_bin, format, type = ...')
    add('return function(key, cost, now_us, now_ms, not_run)')
    add('local v = rpcall("GET", key)')
    add('if type(v) == "table" then return false, not_run .. v.err end')
    for i = 1, n do
        add(format('local a%d, b%d, c%d = false, 0, 0', i, i, i))
    end
    add('local ttl = false')
    add('if v then')
    add(format('if #v ~= %d then return nil end', struct.size(fmt)))
    add('local ' .. table.concat(entry, ', ') .. ' = unpack_bin("'
        .. fmt .. '", v)')
    add('if ' .. table.concat(checks, ' or ') .. ' then return nil end')
    add('ttl = 0')
    add('local e')
    for i = 1, n do
        local nf = nfields[lims[i][1]]
        local b = nf >= 2 and ('x' .. i .. 'b') or '0'
        local c = nf >= 3 and ('x' .. i .. 'c') or '0'
        add(format('e = E%d(x%da, %s, %s, %d, now_ms)', i, i, b, c,
            lims[i][3]))
        add(format('a%d, b%d, c%d = e and x%da, %s, %s', i, i, i, i, b, c))
        add('if e and e > ttl then ttl = e end')
    end
    add('end')
    local all, oks = {}, {}
    for i = 1, n do
        local l = lims[i]
        add(format('local ok%d, m%d, r%d, t%d, n%da, n%db, n%dc = '
            .. 'D%d(a%d, b%d, c%d, %d, %d, %d, now_us, now_ms, cost)',
            i, i, i, i, i, i, i, i, i, i, i, l[2], l[3], l[4]))
        all[i] = 'ok' .. i
        oks[i] = format('(ok%d and 1 or 0), m%d, '
            .. '(r%d < 281474976710655 and r%d or 281474976710655), '
            .. '(t%d < 281474976710655 and t%d or 281474976710655), 0',
            i, i, i, i, i, i)
    end
    add('if ' .. table.concat(all, ' and ') .. ' then')
    add('local exp = 0')
    for i = 1, n do
        add(format('local e%d = E%d(n%da, n%db, n%dc, %d, now_ms)', i, i, i,
            i, i, lims[i][3]))
        add(format('if not e%d then return nil end', i))
        add(format('if e%d > exp then exp = e%d end', i, i))
    end
    add('local val = pack_bin("' .. fmt .. '", ' .. table.concat(vals, ', ')
        .. ')')
    add('if exp == ttl then rcall("SET", key, val, "KEEPTTL")')
    add('else rcall("SET", key, val, "PXAT", format("%d", exp)) end')
    add('return pack_bin("' .. reply .. '", now_ms, 1, '
        .. table.concat(oks, ', ') .. ')')
    add('end')
    for i = 1, n do
        local l = lims[i]
        add(format('if ok%d then ok%d, m%d, r%d = D%d(a%d, b%d, c%d, %d, %d, '
            .. '%d, now_us, now_ms, 0); t%d = 0 end', i, i, i, i, i, i, i, i,
            l[2], l[3], l[4], i))
    end
    add('return pack_bin("' .. reply .. '", now_ms, 0, '
        .. table.concat(oks, ', ') .. ')')
    add('end')
    return table.concat(out, '\n')
end

-- The compiled function for the limits of request r (see above; called
-- as f(key, cost, now_us, now_ms, not_run) for a cost of at least 1), or
-- false when r is not a request of one part, no penalty and such limits.
-- algos, nfields and layouts are decide.lua's tables.
local function compile_part(r, algos, nfields, layouts)
    if #r < 11 or byte(r, 1) ~= 1 or byte(r, 2) ~= 0 then
        return false
    end
    local n = byte(r, 3)
    if n < 1 or n > 8 or #r ~= 11 + 25 * n then
        return false
    end
    local lims, seen, fns, pos = {}, {}, {}, 12
    for i = 1, n do
        local algo, req, per, burst, block = unpack_bin('<BI7I5I7I5', r, pos)
        local id = algo * 1099511627776 + per
        if not algos[algo] or req < 1 or per < 1 or block ~= 0 or seen[id] then
            return false
        end
        seen[id] = true
        lims[i] = { algo, req, per, burst < 1 and req or burst }
        fns[2 * i - 1], fns[2 * i] = algos[algo].decide, algos[algo].expiry
        pos = pos + 25
    end
    -- A Redis whose Lua lacks loadstring decides by the general path.
    local load = rawget(_G, 'loadstring')
    if not load or (n == 1 and lims[1][1] == 0) then
        return false
    end
    local chunk = assert(load(compiled_source(lims, nfields, layouts)))
    fns[2 * n + 1], fns[2 * n + 2], fns[2 * n + 3] = rpcall, rcall, unpack_bin
    fns[2 * n + 4], fns[2 * n + 5], fns[2 * n + 6] = pack_bin, format, type
    return chunk(unpack(fns, 1, 2 * n + 6))
end
