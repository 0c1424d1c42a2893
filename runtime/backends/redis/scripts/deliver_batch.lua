-- Deliver the batches of several senders to one mailbox, in order (see sending.py).
-- KEYS: cfg, stream, bell, queued.  ARGV: group, then for each batch its length n and
-- its n messages' wire JSON.
-- Returns {status, batches delivered, waiting, limit}: status 0 all delivered, -1 no
-- such mailbox, -2 full: the batches from number (delivered + 1) on were not.
-- Each batch is all or none, checked as deliver.lua checks one (what waits: entries
-- not handed out, and those the reader holds queued).
local limit = redis.call('HGET', KEYS[1], 'max_pending')
if not limit then return {-1, 0, 0, 0} end
limit = tonumber(limit)
local waiting = redis.call('XLEN', KEYS[2])
local exact = false
local status, delivered, added = 0, 0, 0
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if waiting + n > limit and not exact then
    -- Only now the exact figure: entries handed out and not acked do not wait.
    local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1])
    if ok then waiting = waiting - pending[1] + redis.call('LLEN', KEYS[4]) end
    exact = true
  end
  if waiting + n > limit then
    status = -2
    break
  end
  for j = i + 1, i + n do
    redis.call('XADD', KEYS[2], '*', 'm', ARGV[j])
  end
  waiting, added, delivered = waiting + n, added + n, delivered + 1
  i = i + n + 1
end
if added > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return {status, delivered, waiting, limit}
