-- Deliver messages to one mailbox, all or none (see mailbox.py).
-- KEYS: cfg, stream, bell, queued.  ARGV: group, then the messages' wire JSON, in order.
-- Returns {status, waiting, limit}: 0 delivered, -1 no such mailbox, -2 full.
-- The stream is never trimmed (trimming drops pending entries silently): the bound
-- is this check of what waits (entries not handed out, and those the reader holds
-- queued), as on every backend; acked entries are deleted, so XLEN counts no history.
local limit = redis.call('HGET', KEYS[1], 'max_pending')
if not limit then return {-1, 0, 0} end
limit = tonumber(limit)
local count = #ARGV - 1
local waiting = redis.call('XLEN', KEYS[2])
if waiting + count > limit then
  -- Only now the exact figure: entries handed out and not acked do not wait.
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1])
  if ok then waiting = waiting - pending[1] + redis.call('LLEN', KEYS[4]) end
  if waiting + count > limit then return {-2, waiting, limit} end
end
for i = 2, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'm', ARGV[i])
end
if count > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return {0, waiting + count, limit}
