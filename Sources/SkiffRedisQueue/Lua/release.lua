local released = 0
for i = 3, #ARGV - 1, 2 do
  local m = takeClaim(queue, ARGV[i], ARGV[i + 1])
  if m then
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
