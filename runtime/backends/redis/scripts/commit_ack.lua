-- Commit an actor's session and retire the entries its batch handled, in one step:
-- both happen or neither (a stale epoch refuses the whole call, before any write).
-- The commit is commit.lua's, the ack ack.lua's (XACK + XDEL); then, as drain.lua,
-- the next batch is handed out to the same reader (saving the drain's round trip).
-- KEYS: epoch, session, admitted, sessions set, systems set, stream, bell.
-- ARGV: epoch, group, consumer, count to hand out ('0': all, '-1': none), state, meta,
--       outbox, admitted capacity, actor id, system id, how many new ids follow,
--       new ids..., entry ids to retire...
-- Returns {retired, entries, more}: entries flat as drain.lua's; more is 1 when entries wait past those handed
-- out (with count '-1': when the bell rang since the last drain).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over; '
                           .. 'this commit is refused and nothing was acked')
end
redis.call('HSET', KEYS[2], 'state', ARGV[5], 'meta', ARGV[6], 'outbox', ARGV[7])
local first = 12
local last_new = first + tonumber(ARGV[11]) - 1
local ids = {}
for i = first, last_new do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then
    redis.call('RPUSH', KEYS[3], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then redis.call('RPUSH', KEYS[3], unpack(ids)) end
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[8]), -1)
redis.call('SADD', KEYS[4], ARGV[9])
redis.call('SADD', KEYS[5], ARGV[10])
local retired = 0
ids = {}
for i = last_new + 1, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 or i == #ARGV then
    retired = retired + redis.call('XACK', KEYS[6], ARGV[2], unpack(ids))
    redis.call('XDEL', KEYS[6], unpack(ids))
    ids = {}
  end
end
if ARGV[4] == '-1' then
  return {retired, {}, redis.call('EXISTS', KEYS[7])}
end
-- The bell is cleared first: a delivery after this rings it again for wait().
redis.call('DEL', KEYS[7])
local r
if ARGV[4] == '0' then
  r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'STREAMS', KEYS[6], '>')
else
  r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[6], '>')
end
if not r then return {retired, {}, 0} end
local entries = r[1][2]
local more = 0
if #entries > 0 then
  local after = redis.call('XRANGE', KEYS[6], '(' .. entries[#entries][1], '+', 'COUNT', 1)
  if #after > 0 then more = 1 end
end
local flat = {}
for _, e in ipairs(entries) do
  flat[#flat + 1] = e[1]
  local fields = e[2]
  flat[#flat + 1] = (fields and fields[2]) or ''
end
return {retired, flat, more}
