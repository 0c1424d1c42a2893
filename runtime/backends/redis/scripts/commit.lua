-- Commit an actor's session: state, meta and outbox replaced and the new admitted
-- ids remembered, in one step; refused to a stale epoch (a worker paused past its
-- lease must not overwrite its successor's state).
-- KEYS: epoch, session, admitted, sessions set, systems set.
-- ARGV: epoch ('' when no reader of this process claimed the mailbox), state, meta,
--       outbox, admitted capacity, actor id, system id, new ids...
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over; '
                           .. 'this commit is refused')
end
redis.call('HSET', KEYS[2], 'state', ARGV[2], 'meta', ARGV[3], 'outbox', ARGV[4])
local ids = {}
for i = 8, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then
    redis.call('RPUSH', KEYS[3], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then redis.call('RPUSH', KEYS[3], unpack(ids)) end
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('SADD', KEYS[5], ARGV[7])
return 1
