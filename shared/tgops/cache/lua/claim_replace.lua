-- Replace a claim's value (and TTL) only while it still holds the caller's value.
-- KEYS[1] claim key; ARGV[1] the caller's current value; ARGV[2] new value; ARGV[3] new TTL in ms.
-- Returns 1 when replaced, 0 when the key holds something else or nothing.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
  return 1
end
return 0
