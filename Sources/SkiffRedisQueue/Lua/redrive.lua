local s = settings(queue)
if not mayCreate(queue, tonumber(ARGV[4])) then
  -- Nothing to move creates nothing; something to move needs the queue.
  if readyDepth(s.dlq) == 0 then return 0 end
  return -3
end
local source = s.dlq
local wanted = tonumber(ARGV[3])
local moved = 0
for priority = 9, 0, -1 do
  while moved < wanted do
    local envelope = redis.call('LPOP', readyKey(source, priority))
    if not envelope then break end
    local m = parse(envelope)
    leftHead(source, m)
    forget(source, m.id)
    m.seq = redis.call('INCR', key(queue, 'seq'))
    m.enq, m.count, m.first, m.last = now, 0, 0, 0
    redis.call('RPUSH', readyKey(queue, m.priority), build(m))
    holdOffloaded(queue, m.id)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('SADD', indexKey('queues'), queue)
  indexRetention(queue, now, s.retention)
  count(queue, 'enqueued', moved)
  notify(queue)
end
return moved
