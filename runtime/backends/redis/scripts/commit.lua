-- Commit an actor's session: state, meta and outbox replaced and the new admitted
-- ids remembered, in one step; refused to a stale epoch (a worker paused past its
-- lease must not overwrite its successor's state).
-- KEYS: epoch, session, admitted, sessions set, systems set.
-- ARGV: epoch ('' when no reader of this process claimed the mailbox), state, meta,
--       outbox, admitted capacity, actor id, system id, new ids...
--#include lib_commit
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over; '
                           .. 'this commit is refused')
end
commit_session(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], 8, #ARGV)
return 1
