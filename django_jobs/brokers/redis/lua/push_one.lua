-- push_one.lua: publish one job (the one-by-one enqueue): Store.push's pipeline as one command.
--
-- KEYS[1]  queues       SET   every queue name published to
-- KEYS[2]  ready:<q>    ZSET  job id -> -priority * 1e13 + run_after (epoch ms)
--          (or delayed:<q>, "<priority>|<job id>" -> run_after, for a job not due yet)
-- KEYS[3]  wakeup:<q>   LIST  tokens waking workers serving q           (ready jobs only)
-- KEYS[4]  wakeup:*     LIST  tokens waking workers serving every queue (ready jobs only)
-- ARGV[1]  queue name
-- ARGV[2]  score
-- ARGV[3]  member
-- ARGV[4]  tokens kept per wake-up list at most

redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if #KEYS == 4 then
    local last = tonumber(ARGV[4]) - 1
    for i = 3, 4 do
        redis.call('LPUSH', KEYS[i], '1')
        redis.call('LTRIM', KEYS[i], 0, last)
    end
end
return 1
