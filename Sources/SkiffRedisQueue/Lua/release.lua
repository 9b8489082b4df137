local held, n = takeClaims(queue, 3)
local released = 0
for j = 1, n do
  if held[j] then
    local m = parse(held[j])
    m.count = math.max(m.count - 1, 0)
    requeue(queue, m)
    released = released + 1
  end
end
if released > 0 then
  count(queue, 'delivered', -released)
  notify(queue)
end
return released
