-- ARGV: prefix, queue (unused), count. Takes up to count ids from the payload graveyard (the
-- slot's, on a cluster): messages deleted for good whose bodies the payload store still holds.
-- The caller deletes those objects; if it dies first, the sweep deletes them after the retention.
-- One LPOP with a count (Redis 6.2 and later): nil for an empty or missing list.
return redis.call('LPOP', indexKey('payload-graveyard'), tonumber(ARGV[3])) or {}
