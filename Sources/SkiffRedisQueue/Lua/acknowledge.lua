local out = {}
local acked = 0
for i = 3, #ARGV - 1, 2 do
  local m = takeClaim(queue, ARGV[i], ARGV[i + 1])
  if m then
    forget(queue, m.id)
    acked = acked + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
count(queue, 'acknowledged', acked)
return out
