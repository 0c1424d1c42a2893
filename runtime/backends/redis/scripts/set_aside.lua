-- Set a handed-out entry aside in a list (a dead letter with its reason, or an
-- unreadable entry's raw payload), then retire it.
-- KEYS: epoch, stream, list.  ARGV: epoch, group, entry id, what to keep.
-- Returns 1, or 0 when the entry was not pending (already retired).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another reader took this mailbox over')
end
if redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
