-- The update was queued: turn the caller's pending claim into the dedupe record for the whole TTL.
-- KEYS[1] the claim; ARGV[1] the claimant's token; ARGV[2] the record's value; ARGV[3] its TTL (ms).
-- A pending claim that expired during a slow send is recorded all the same; another claimant's is left
-- alone (its send carries the same FIFO deduplication id). Returns 1 when recorded.
local holder = redis.call("GET", KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1
