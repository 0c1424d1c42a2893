-- Keep an unreadable entry aside and retire it. KEYS: epoch, stream, corrupt.
-- ARGV: epoch, group, entry id, raw payload.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another reader took this mailbox over')
end
if redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
