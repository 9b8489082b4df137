-- Whether each (id, token) pair still holds its claim: in flight, under this claim token, its
-- lease not run out. Reads only.
local out = {}
for i = 3, #ARGV - 1, 2 do
  out[#out + 1] = heldClaim(queue, ARGV[i], ARGV[i + 1]) and 1 or 0
end
return out
