-- Hand out waiting entries to the reader of this epoch.
-- KEYS: epoch, stream, bell, queued.
-- ARGV: epoch, group, consumer, count ('0': all, '-1': read nothing new),
--       then the ids the reader still keeps queued (given back or left by take), in order,
--       or nothing when its queue did not change ('-' as the first of them: it is empty now).
-- Returns {entries, more}: entries flat (id, message, id, message, ...: fewer
-- nested replies to parse); more is 1 when entries wait past those handed out.
-- The bell is cleared first: a delivery after this rings it again for wait().
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another reader took this mailbox over')
end
if #ARGV >= 5 then
  redis.call('DEL', KEYS[4])
  local ids = {}
  for i = 5, #ARGV do
    if ARGV[i] ~= '-' then ids[#ids + 1] = ARGV[i] end
  end
  if #ids > 0 then redis.call('RPUSH', KEYS[4], unpack(ids)) end
end
if ARGV[4] == '-1' then return {{}, 0} end
redis.call('DEL', KEYS[3])
local r
if ARGV[4] == '0' then
  r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'STREAMS', KEYS[2], '>')
else
  r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
end
if not r then return {{}, 0} end
local entries = r[1][2]
local more = 0
if #entries > 0 then
  local after = redis.call('XRANGE', KEYS[2], '(' .. entries[#entries][1], '+', 'COUNT', 1)
  if #after > 0 then more = 1 end
end
local flat = {}
for _, e in ipairs(entries) do
  flat[#flat + 1] = e[1]
  local fields = e[2]
  flat[#flat + 1] = (fields and fields[2]) or ''
end
return {flat, more}
