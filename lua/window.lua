-- Storage shared by the window algorithms (fixed_window.lua,
-- sliding_window.lua): the state is a string value with PX ttl_ms.

-- Loads a window algorithm's state string; nil if there is none.
local function window_load(key)
    return redis.call('GET', key) or nil
end

-- Stores a window algorithm's state string, expiring after ttl_ms.
local function window_store(key, value, ttl_ms)
    redis.call('SET', key, value, 'PX', string.format('%.0f', ttl_ms))
end
