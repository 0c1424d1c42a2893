-- Assign a placed actor to a host, if it is still where the caller saw it.
-- KEYS: placed (hash), load (hash host -> count).
-- ARGV: field, new host, expected host ('' none yet, '*' any), entry JSON.
-- Returns {1, ''} when assigned, {0, current host} when it moved meanwhile.
local current = redis.call('HGET', KEYS[1], ARGV[1])
local host = ''
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and type(doc.host) == 'string' then host = doc.host end
end
if ARGV[3] ~= '*' and host ~= ARGV[3] then return {0, host} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
if host ~= ARGV[2] then
  if host ~= '' then redis.call('HINCRBY', KEYS[2], host, -1) end
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return {1, ''}
