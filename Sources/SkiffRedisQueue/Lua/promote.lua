local moved, more = promote(queue, settings(queue))
return { moved, more and 1 or 0 }
