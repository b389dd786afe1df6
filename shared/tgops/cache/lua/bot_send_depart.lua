-- Let one reserved Bot API call go now, if it cannot make its lane or its chat go over the limits as
-- Telegram sees them, whenever each call reaches Telegram. Each call that went is held with the
-- latest time it can have reached Telegram: while it is in flight, its departure plus ARGV[6]; once
-- bot_send_arrived has run, that moment (the answer came back, so the call had arrived). A new call
-- reaches Telegram after now, so it keeps the limits whatever the network's jitter when:
-- - fewer than ARGV[1] of the lane's calls can have arrived after now - ARGV[2] (no window of ARGV[2]
--   ms holds more than ARGV[1] calls), and
-- - the chat's last call can have arrived no later than now - ARGV[3] (its spacing).
-- KEYS[1] the lane's calls (sorted set: call id -> latest arrival, ms), KEYS[2] the chat's last call
-- (hash: call, at; ignored when ARGV[3] is 0), KEYS[3] the bot's 429 pause.
-- ARGV[4] this call's id, ARGV[5] how soon to ask again (ms) when a call still in flight holds this one
-- back: its bound is late, and its answer, which lowers it, usually comes within ms, ARGV[6] how long an unanswered call may
-- stay in flight (ms), ARGV[7] now (ms; absent: the Redis server's clock, the one every consumer
-- shares; given by tests that drive the clock).
-- Returns {1, 0} when the call goes now (and is recorded in flight), {0, ms to wait before asking
-- again}, or {-1, ms of pause left} when a 429 paused the bot (the call keeps its turn: ask again then).
local now
if ARGV[7] then
  now = tonumber(ARGV[7])
else
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local paused = redis.call("PTTL", KEYS[3])
if paused > 0 then
  return {-1, paused}
end
local sends = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local spacing = tonumber(ARGV[3])
local poll = tonumber(ARGV[5])
local in_flight = tonumber(ARGV[6])
local earliest, held_by_flight = now, false
local function hold_until(bound, gap)
  if bound + gap > earliest then
    earliest = bound + gap
    held_by_flight = bound > now
  end
end
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - window)
local recent = redis.call("ZCARD", KEYS[1])
if recent >= sends then
  local deciding = redis.call("ZRANGE", KEYS[1], recent - sends, recent - sends, "WITHSCORES")
  hold_until(tonumber(deciding[2]), window)
end
if spacing > 0 then
  local last = redis.call("HGET", KEYS[2], "at")
  if last then
    hold_until(tonumber(last), spacing)
  end
end
if earliest > now then
  return {0, held_by_flight and poll or earliest - now}
end
redis.call("ZADD", KEYS[1], now + in_flight, ARGV[4])
redis.call("PEXPIRE", KEYS[1], window + in_flight)
if spacing > 0 then
  redis.call("HSET", KEYS[2], "call", ARGV[4], "at", now + in_flight)
  redis.call("PEXPIRE", KEYS[2], spacing + in_flight)
end
return {1, 0}
