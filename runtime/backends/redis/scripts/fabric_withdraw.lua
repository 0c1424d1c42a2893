-- Remove a lease record (only one published by pid ARGV[1] on host ARGV[2], unless
-- ARGV[1] is ''). KEYS: record, fabric set.  ARGV: pid or '', host, id.  Returns 1 if removed.
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SREM', KEYS[2], ARGV[3])
  return 0
end
if ARGV[1] ~= '' then
  local ok, doc = pcall(cjson.decode, current)
  if not ok or type(doc) ~= 'table' or doc.pid ~= tonumber(ARGV[1]) or doc.host ~= ARGV[2] then
    return 0
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
return 1
