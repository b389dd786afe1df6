-- Fixed-window rate limit: count one hit in the current window and say whether it is allowed.
-- KEYS[1] the counter; ARGV[1] hits allowed per window; ARGV[2] window length in ms.
-- Returns {allowed (1 or 0), hits left in this window, ms until the window ends}.
local count = redis.call("INCR", KEYS[1])
local ttl = redis.call("PTTL", KEYS[1])
if count == 1 or ttl < 0 then
  -- A counter without a TTL would refuse its subject forever; the first hit opens the window.
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
local limit = tonumber(ARGV[1])
if count > limit then
  return {0, 0, ttl}
end
return {1, limit - count, ttl}
