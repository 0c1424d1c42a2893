-- Publish or renew a lease record (an actor's in the fabric, a host's in its pool)
-- unless another process's record took its name.
-- KEYS: record, set of ids.  ARGV: owner token, record JSON, ttl ms, id.
-- Returns 1 written, 0 the name is another live process's.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and doc.token ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
