-- Remove a host's record if it is still this process's.
-- KEYS: record, hosts set.  ARGV: token, host id.  Returns 1 if removed.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and doc.token ~= ARGV[1] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
