-- Append a step record to an actor's journal, or (no record) empty it; refused to a
-- stale epoch.  KEYS: epoch, journal.  ARGV: epoch ('' when unfenced), record or nothing.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE epoch ' .. ARGV[1] .. ': another activation took this actor over')
end
if ARGV[2] then
  return redis.call('RPUSH', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[2])
return 0
