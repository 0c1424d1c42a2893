-- Included by commit.lua and commit_ack.lua (lua.py inlines it where `--#include lib_commit` stands).
-- Write an actor's session (state, meta, outbox) and remember its new admitted ids,
-- ARGV[first_id..last_id], keeping the last `capacity` of them; list the actor and its system.
local function commit_session(session, admitted, sessions, systems, state, meta, outbox, capacity,
                              actor_id, system_id, first_id, last_id)
  redis.call('HSET', session, 'state', state, 'meta', meta, 'outbox', outbox)
  local ids = {}
  for i = first_id, last_id do
    ids[#ids + 1] = ARGV[i]
    if #ids == 1000 then
      redis.call('RPUSH', admitted, unpack(ids))
      ids = {}
    end
  end
  if #ids > 0 then redis.call('RPUSH', admitted, unpack(ids)) end
  redis.call('LTRIM', admitted, -tonumber(capacity), -1)
  redis.call('SADD', sessions, actor_id)
  redis.call('SADD', systems, system_id)
end
