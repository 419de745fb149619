-- claim.lua: promote due delayed jobs, then move the best LIMIT ready ids to in-flight.
--
-- KEYS[1]              inflight      ZSET  job id -> lease deadline (epoch ms)
-- KEYS[2 .. n+1]       ready:<q>     ZSET  job id -> -priority * 1e13 + run_after (epoch ms)
-- KEYS[n+2 .. 2n+1]    delayed:<q>   ZSET  "<priority>|<job id>" -> run_after (epoch ms)
--                      (one ready and one delayed key per queue served, in the same order)
-- ARGV[1]  now (epoch ms)
-- ARGV[2]  limit: how many ids to hand out at most
-- ARGV[3]  lease deadline of the handed-out ids (epoch ms)
-- ARGV[4 ..] ids the database has decided about since the last pop (claimed, or not READY):
--          they leave in-flight first (the previous claim's settle, riding on this call)
--
-- Returns the claimed ids, best first (highest priority, then oldest run_after).
-- A lower ready score is better, so one ZRANGE per queue finds each queue's best ids.

local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local deadline = ARGV[3]
local n = (#KEYS - 1) / 2

for i = 4, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
end

-- Promote: delayed jobs whose run_after has come join their ready set (bounded per call).
for i = 1, n do
    local ready, delayed = KEYS[1 + i], KEYS[1 + n + i]
    local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1000)
    for j = 1, #due, 2 do
        local member, run_after = due[j], tonumber(due[j + 1])
        local bar = string.find(member, '|', 1, true)
        local priority = tonumber(string.sub(member, 1, bar - 1))
        local score = string.format('%.0f', -priority * 1e13 + run_after)
        redis.call('ZADD', ready, score, string.sub(member, bar + 1))
        redis.call('ZREM', delayed, member)
    end
end

-- Claim: the best `limit` ids across the served queues move to in-flight with a lease.
local candidates = {}
for i = 1, n do
    local top = redis.call('ZRANGE', KEYS[1 + i], 0, limit - 1, 'WITHSCORES')
    for j = 1, #top, 2 do
        table.insert(candidates, { tonumber(top[j + 1]), top[j], KEYS[1 + i] })
    end
end
table.sort(candidates, function(a, b)
    if a[1] == b[1] then
        return a[2] < b[2]
    end
    return a[1] < b[1]
end)

local claimed = {}
for k = 1, math.min(limit, #candidates) do
    local c = candidates[k]
    redis.call('ZREM', c[3], c[2])
    redis.call('ZADD', KEYS[1], deadline, c[2])
    claimed[k] = c[2]
end
return claimed
