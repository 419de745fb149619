-- sweep.lua: make READY jobs known again (sweeper), or reclaim expired in-flight ids.
--
-- KEYS[1]          inflight     ZSET  job id -> lease deadline (epoch ms)
-- KEYS[2k], KEYS[2k+1]          for the k-th queue of this call (k = 1, 2, ...):
--                  ready:<q>    ZSET  job id -> -priority * 1e13 + run_after (epoch ms)
--                  delayed:<q>  ZSET  "<priority>|<job id>" -> run_after (epoch ms)
-- ARGV[1]  now (epoch ms)
-- ARGV[2]  mode:
--          "missing"  add only the jobs Redis holds nowhere (not ready, delayed or in flight)
--          "expired"  only ids whose in-flight lease ran out: drop them from in-flight, and
--                     add them back when k > 0 (the row is still READY in the database)
-- ARGV[3 ..] four per job: job id, k (0: drop only), priority, run_after (epoch ms)
--
-- Returns how many jobs were added to a ready or delayed set.

local now = tonumber(ARGV[1])
local mode = ARGV[2]
local added = 0

for a = 3, #ARGV, 4 do
    local id, k = ARGV[a], tonumber(ARGV[a + 1])
    local priority, run_after = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local lease = redis.call('ZSCORE', KEYS[1], id)
    local add = false
    if mode == 'expired' then
        if lease and tonumber(lease) <= now then
            redis.call('ZREM', KEYS[1], id)
            add = k > 0
        end
    elseif not lease and k > 0 then
        local held = redis.call('ZSCORE', KEYS[2 * k], id)
            or redis.call('ZSCORE', KEYS[2 * k + 1], priority .. '|' .. id)
        add = not held
    end
    if add then
        if run_after <= now then
            local score = string.format('%.0f', -priority * 1e13 + run_after)
            redis.call('ZADD', KEYS[2 * k], score, id)
        else
            redis.call('ZADD', KEYS[2 * k + 1], run_after, priority .. '|' .. id)
        end
        added = added + 1
    end
end
return added
