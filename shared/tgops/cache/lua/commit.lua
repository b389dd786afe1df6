-- COMMIT (seed 002): a provider reported success; consume what the success costs, once per task.
-- KEYS, six per task: commit marker, reserve lock, cooldown, today's cap, link state, one-shot dedupe.
-- ARGV, seven per task: token (the task id), cooldown seconds (0: none), seconds until the cap's
-- midnight, new link state ("" for none), link state TTL seconds, "1" when one-shot, marker TTL seconds.
-- Per task returns 1 committed, 2 already committed earlier (nothing applied again), or 0 refused
-- because another holder owns the reserve lock now (nothing applied).
-- The marker makes a retried report (after Postgres failed to record the first one) apply nothing twice.
local results = {}
local task = 0
for first = 1, #KEYS, 6 do
  task = task + 1
  local arg = (task - 1) * 7
  local marker, lock, cooldown, cap_key, state_key, dedupe = KEYS[first], KEYS[first + 1], KEYS[first + 2],
    KEYS[first + 3], KEYS[first + 4], KEYS[first + 5]
  local token = ARGV[arg + 1]
  local holder = redis.call("GET", lock)
  if redis.call("EXISTS", marker) == 1 then
    results[task] = 2
  elseif holder and holder ~= token then
    results[task] = 0
  else
    local cooldown_sec = tonumber(ARGV[arg + 2])
    if cooldown_sec > 0 then
      redis.call("SET", cooldown, "1", "EX", cooldown_sec)
    end
    redis.call("INCR", cap_key)
    redis.call("EXPIRE", cap_key, ARGV[arg + 3])
    if ARGV[arg + 4] ~= "" then
      redis.call("SET", state_key, ARGV[arg + 4], "EX", ARGV[arg + 5])
    end
    if ARGV[arg + 6] == "1" then
      redis.call("SET", dedupe, "1", "EX", ARGV[arg + 5])
    end
    if holder then
      redis.call("DEL", lock)
    end
    redis.call("SET", marker, "1", "EX", ARGV[arg + 7])
    results[task] = 1
  end
end
return results
