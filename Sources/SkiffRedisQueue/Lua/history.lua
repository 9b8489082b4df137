-- Reads only: the queue's samples of the last window, oldest first, as recorded by
-- history-record.lua (`<start>|<recorded at>|ready|inFlight|delayed|deadLetter|enqueued|delivered|acknowledged`).
return redis.call('ZRANGEBYSCORE', key(queue, 'samples'), '(' .. (now - {{historyWindowMs}}), '+inf')
