-- The update could not be queued: drop the caller's pending claim, and nobody else's.
-- KEYS[1] the claim; ARGV[1] the claimant's token. Returns 1 when dropped.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
