-- ARGV: prefix, '', topic, then (name, pushed, failed) per subscription of the topic: adds push
-- outcomes a replica counted to the subscriptions' counters, skipping any deleted meanwhile.
for at = 4, #ARGV, 3 do
  local name = ARGV[at]
  if redis.call('HEXISTS', topicKey('subs'), name) == 1 then
    if ARGV[at + 1] ~= '0' then redis.call('HINCRBY', topicKey('counters'), name .. '|pushed', ARGV[at + 1]) end
    if ARGV[at + 2] ~= '0' then redis.call('HINCRBY', topicKey('counters'), name .. '|pushFailed', ARGV[at + 2]) end
  end
end
return 1
