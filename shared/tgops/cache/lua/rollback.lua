-- ROLLBACK (seed 002): a provider reported failure; release the reserve lock and nothing else
-- (cooldown and cap were never consumed). Only the task that holds a lock can release it.
-- KEYS: reserve locks; ARGV: the matching tokens (task ids). Returns how many locks were released.
local released = 0
for index, lock in ipairs(KEYS) do
  if redis.call("GET", lock) == ARGV[index] then
    released = released + redis.call("DEL", lock)
  end
end
return released
