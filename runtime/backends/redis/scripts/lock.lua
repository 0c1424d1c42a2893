-- Take a lease key for an owner: free, already this owner's, or held by the value
-- the caller saw die on this host.
-- KEYS: the key.  ARGV: owner value, lease ms, replaceable value or ''.
-- Returns {1, ''} taken, or {0, holder}.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return {0, holder} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ''}
