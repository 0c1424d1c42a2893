-- Deliver a dead letter again (same id, at the back of the queue), atomically with
-- taking it off the dead letters. KEYS: dead, stream, bell.  ARGV: the dead letter
-- as stored, the message's wire JSON.  Returns 1, or 0 if there was no such letter.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
if redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], '1') end
return 1
