-- Each receipt still holding its claim is deleted with its error and history records; the
-- answer says per receipt whether it did (1) or had moved on (0). A few commands per page of
-- receipts, whatever their number.
local held, n, taken = takeClaims(queue, 3)
forgetAll(queue, taken)
local out = {}
for j = 1, n do out[j] = held[j] and 1 or 0 end
count(queue, 'acknowledged', #taken)
return out
