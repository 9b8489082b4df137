#!lua flags=allow-cross-slot-keys,no-writes
-- Redis Cluster only, without the library: the dead-letter queues created in many slots of one
-- node and not yet in the global registry. ARGV: the slots' index bases, all on this node.
-- Returns pairs: index base, queue name.
local out = {}
for i = 1, #ARGV do
  for _, q in ipairs(redis.call('SMEMBERS', ARGV[i] .. ':unregistered')) do
    out[#out + 1] = ARGV[i]
    out[#out + 1] = q
  end
end
return out
