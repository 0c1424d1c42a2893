-- Take the reader role of a mailbox and a new epoch (see reading.py).
-- KEYS: reader, epoch.  ARGV: holder (this reader's JSON), lease ms, replaceable
-- (the holder a caller saw die on this host, or '').
-- Returns the new epoch, or the current holder's JSON when another holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return {0, holder} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {redis.call('INCR', KEYS[2]), ''}
