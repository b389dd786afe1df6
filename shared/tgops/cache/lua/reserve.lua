-- RESERVE (seed 002): take the first candidate account that may act now, and lock it for this task.
-- Checks cooldown, daily cap, link state gating and one-shot dedupe, but consumes none of them.
-- KEYS, five per candidate in order: reserve lock, cooldown, today's cap, link state, one-shot dedupe.
-- ARGV[1] token (the task id); ARGV[2] lock TTL in ms; ARGV[3] a link state that forbids the action
-- ("" for none); ARGV[4] the link state the action requires ("" for none); ARGV[5] daily cap (0: none);
-- ARGV[6] "1" when the action is one-shot.
-- Returns the 1-based position of the reserved candidate, or 0 when none may act.
local forbidden_state = ARGV[3]
local required_state = ARGV[4]
local cap = tonumber(ARGV[5])
local one_shot = ARGV[6] == "1"

for first = 1, #KEYS, 5 do
  local lock, cooldown, cap_key, state_key, dedupe = KEYS[first], KEYS[first + 1], KEYS[first + 2],
    KEYS[first + 3], KEYS[first + 4]
  local state = redis.call("GET", state_key) or ""
  local may_act = redis.call("EXISTS", cooldown) == 0
    and (cap == 0 or tonumber(redis.call("GET", cap_key) or "0") < cap)
    and (forbidden_state == "" or state ~= forbidden_state)
    and (required_state == "" or state == required_state)
    and (not one_shot or redis.call("EXISTS", dedupe) == 0)
  if may_act and redis.call("SET", lock, ARGV[1], "NX", "PX", ARGV[2]) then
    return (first + 4) / 5
  end
end
return 0
