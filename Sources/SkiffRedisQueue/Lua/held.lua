-- Whether each (id, token) pair still holds its claim: in flight, under this claim token, its
-- lease not run out. Reads only.
local held, n = heldClaims(queue, 3)
local out = {}
for j = 1, n do out[j] = held[j] and 1 or 0 end
return out
