-- ARGV: prefix, queue (unused), count. Takes up to count ids from the payload graveyard (the
-- slot's, on a cluster): messages deleted for good whose bodies the payload store still holds.
-- The caller deletes those objects; if it dies first, the sweep deletes them after the retention.
local taken = {}
for i = 1, tonumber(ARGV[3]) do
  local id = redis.call('LPOP', indexKey('payload-graveyard'))
  if not id then break end
  taken[i] = id
end
return taken
