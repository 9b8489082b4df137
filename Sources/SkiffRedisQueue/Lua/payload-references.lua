-- The count of the messages that share one payload object (the copies of a topic publish,
-- MessageID.isShared), without the library: one key per object, in its own slot on a cluster.
-- KEYS[1]: the count; ARGV: delta, milliseconds to keep it.
-- Returns the count after the change; 0 when it reached zero (the count is deleted, and the
-- caller deletes the object); -1 when a lowering found no count (the caller leaves the object to
-- the sweep).
local delta = tonumber(ARGV[1])
if delta < 0 and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local count = redis.call('INCRBY', KEYS[1], delta)
if count <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return count
