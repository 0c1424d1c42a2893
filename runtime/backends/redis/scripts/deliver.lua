-- Deliver messages to one mailbox, all or none (see mailbox.py).
-- KEYS: cfg, stream, bell.  ARGV: the messages' wire JSON, in order.
-- Returns {status, pending, limit}: 0 delivered, -1 no such mailbox, -2 full.
-- The stream is never trimmed (trimming drops pending entries silently): the bound
-- is this check of XLEN, which counts handed-out entries too, since ack deletes.
local limit = redis.call('HGET', KEYS[1], 'max_pending')
if not limit then return {-1, 0, 0} end
limit = tonumber(limit)
local pending = redis.call('XLEN', KEYS[2])
if pending + #ARGV > limit then return {-2, pending, limit} end
for i = 1, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'm', ARGV[i])
end
if #ARGV > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return {0, pending + #ARGV, limit}
