-- Pause a bot after a 429: every consumer waits until the pause ends. Never shortens a longer pause.
-- KEYS[1] the bot's pause key; ARGV[1] the pause in ms. Returns the pause now in force (ms).
local pause = tonumber(ARGV[1])
local left = redis.call("PTTL", KEYS[1])
if left < pause then
  redis.call("SET", KEYS[1], "1", "PX", pause)
  return pause
end
return left
