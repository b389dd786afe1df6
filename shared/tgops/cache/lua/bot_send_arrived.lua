-- A call that bot_send_depart let go has been answered (or has failed): it reached Telegram, if at
-- all, by now. Its latest arrival becomes now, so the calls after it need not allow for it in flight.
-- KEYS[1] the lane's calls (sorted set), KEYS[2] the chat's last call (hash; ignored when ARGV[2] is 0).
-- ARGV[1] the call's id, ARGV[2] 1 when the call went to a chat, ARGV[3] now (ms; absent: the Redis
-- server's clock, rounded up: the bound must not fall before the arrival it bounds).
-- Returns 1 when the call was held in flight, 0 when it was not (already forgotten).
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000 + math.ceil(tonumber(time[2]) / 1000)
end
if ARGV[2] == "1" and redis.call("HGET", KEYS[2], "call") == ARGV[1] then
  redis.call("HSET", KEYS[2], "at", now)
end
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
  redis.call("ZADD", KEYS[1], now, ARGV[1])
  return 1
end
return 0
