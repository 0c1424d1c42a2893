-- Everything handed out and not acked, moved to this activation's consumer, oldest
-- first: the takeover of a dead reader's entries (the caller holds the reader lease,
-- so the last owner's lease has expired or it let go).
-- KEYS: epoch, stream, queued.  ARGV: epoch, group, consumer.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another reader took this mailbox over')
end
redis.call('DEL', KEYS[3])  -- what the last reader kept queued is pending too
local out = {}
local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, cursor, 'COUNT', 1000)
  cursor = r[1]
  for _, entry in ipairs(r[2]) do
    out[#out + 1] = entry
  end
until cursor == '0-0'
-- Consumers of earlier activations hold nothing now.
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[2], ARGV[2])) do
  for i = 1, #consumer, 2 do
    if consumer[i] == 'name' and consumer[i + 1] ~= ARGV[3] then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], consumer[i + 1])
    end
  end
end
return out
