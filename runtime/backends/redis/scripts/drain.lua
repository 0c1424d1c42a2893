-- Hand out waiting entries to the reader of this epoch.
-- KEYS: epoch, stream, bell, queued.
-- ARGV: epoch, group, consumer, count ('0': all, '-1': read nothing new),
--       then the ids the reader still keeps queued (given back or left by take), in order,
--       or nothing when its queue did not change ('-' as the first of them: it is empty now).
-- Returns {entries, more} (see lib_hand_out).
--#include lib_hand_out
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
local flat, more = hand_out(KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[4])
return {flat, more}
