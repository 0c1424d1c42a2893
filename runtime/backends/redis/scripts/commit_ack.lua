-- Commit an actor's session and retire the entries its batch handled, in one step:
-- both happen or neither (a stale epoch refuses the whole call, before any write).
-- The commit is commit.lua's; the ack is ack.lua's (XACK + XDEL).
-- KEYS: epoch, session, admitted, sessions set, systems set, stream, bell.
-- ARGV: epoch, group, state, meta, outbox, admitted capacity, actor id, system id,
--       how many new ids follow, new ids..., entry ids...
-- Returns {retired, rung}: rung is 1 when the bell rang since the last drain (a
-- delivery came in: the reader drains again instead of waiting).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over; '
                           .. 'this commit is refused and nothing was acked')
end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'meta', ARGV[4], 'outbox', ARGV[5])
local first = 10
local last_new = first + tonumber(ARGV[9]) - 1
local ids = {}
for i = first, last_new do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then
    redis.call('RPUSH', KEYS[3], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then redis.call('RPUSH', KEYS[3], unpack(ids)) end
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
redis.call('SADD', KEYS[4], ARGV[7])
redis.call('SADD', KEYS[5], ARGV[8])
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
local rung = 0
if redis.call('EXISTS', KEYS[7]) == 1 then rung = 1 end
return {retired, rung}
