-- Publish a lease record again unless another process's record took its place.
-- KEYS: record, fabric set.  ARGV: owner token, record JSON, ttl ms, id.
-- Returns 1 renewed, 0 another owner's.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and doc.token ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
