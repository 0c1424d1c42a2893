-- Move a handed-out entry to the dead letters (with its reason), then retire it.
-- KEYS: epoch, stream, dead.  ARGV: epoch, group, entry id, dead letter JSON.
-- Returns 1, or 0 when the entry was not pending (already retired).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another reader took this mailbox over')
end
if redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
