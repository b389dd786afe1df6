-- Claim a webhook update as pending: KEYS[1] webhook:{bot_id}:{update_id}; ARGV[1] the claimant's token;
-- ARGV[2] how long a pending claim lives (ms). Returns 1 when the claim is the caller's (new, or its own
-- claim met again when the same call was sent twice), 0 when another claimant holds it or it is queued.
local holder = redis.call("GET", KEYS[1])
if not holder then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
return 0
