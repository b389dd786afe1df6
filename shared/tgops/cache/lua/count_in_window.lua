-- Count one event: KEYS[1] the counter; ARGV[1] how long a count lives (ms). Returns the count.
-- The window opens with the first event; a counter never lives without a TTL.
local count = redis.call("INCR", KEYS[1])
if redis.call("PTTL", KEYS[1]) < 0 then
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return count
