-- Commit an actor's session and retire the entries its batch handled, in one step:
-- both happen or neither (a stale epoch refuses the whole call, before any write).
-- The commit is commit.lua's, the ack ack.lua's (XACK + XDEL); then, as drain.lua,
-- the next batch is handed out to the same reader (saving the drain's round trip).
-- KEYS: epoch, session, admitted, sessions set, systems set, stream, bell.
-- ARGV: epoch, group, consumer, count to hand out ('0': all, '-1': none), state, meta,
--       outbox, admitted capacity, actor id, system id, how many new ids follow,
--       new ids..., entry ids to retire...
-- Returns {retired, entries, more}: entries as lib_hand_out's; more is 1 when entries wait past those handed
-- out (with count '-1': when the bell rang since the last drain).
--#include lib_commit
--#include lib_hand_out
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over; '
                           .. 'this commit is refused and nothing was acked')
end
local last_new = 12 + tonumber(ARGV[11]) - 1
commit_session(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10],
               12, last_new)
local retired = 0
local ids = {}
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
local flat, more = hand_out(KEYS[6], KEYS[7], ARGV[2], ARGV[3], ARGV[4])
return {retired, flat, more}
