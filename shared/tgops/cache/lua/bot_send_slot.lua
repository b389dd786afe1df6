-- Reserve one Bot API call slot for a bot, shared by every consumer of that bot.
-- KEYS[1] the lane's next free time (ms), KEYS[2] the chat's next free time (ms; ignored when
-- ARGV[2] is 0), KEYS[3] the bot's 429 pause.
-- ARGV[1] the lane's interval between calls (ms), ARGV[2] the chat's spacing (ms, 0: no chat),
-- ARGV[3] the lead (ms): the earliest slot is this far ahead, so what the caller does before its call
-- (an in-flight marker) is done by its slot, ARGV[4] now (ms; absent: the Redis server's clock, the one
-- every consumer shares; given by tests that drive the clock).
-- Slots of a lane are at least ARGV[1] apart, so no window of ARGV[1] ms holds two of them.
-- Returns {1, ms to wait before calling} when a slot is reserved, or {0, ms to wait before asking
-- again} when the bot is paused or the chat is not free at the lane's next slot (nothing reserved,
-- so a chat that must wait never holds back the lane).
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local paused = redis.call("PTTL", KEYS[3])
if paused > 0 then
  return {0, paused}
end
local interval = tonumber(ARGV[1])
local spacing = tonumber(ARGV[2])
local slot = math.max(now + tonumber(ARGV[3]), tonumber(redis.call("GET", KEYS[1]) or 0))
if spacing > 0 then
  local chat_free = tonumber(redis.call("GET", KEYS[2]) or 0)
  if chat_free > slot then
    return {0, chat_free - now}
  end
  redis.call("SET", KEYS[2], slot + spacing, "PX", slot + spacing - now + 1000)
end
redis.call("SET", KEYS[1], slot + interval, "PX", slot + interval - now + 1000)
return {1, slot - now}
