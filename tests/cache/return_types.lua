-- Test fixture: how each Lua reply type comes back through a client.
-- No ARGV: false (a nil reply). Otherwise an array of an integer, a key, a string and a computed number.
if #ARGV == 0 then
  return false
end
return {1, KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}
