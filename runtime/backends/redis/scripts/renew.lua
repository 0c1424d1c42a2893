-- Extend a lease key that still holds this owner's value.
-- KEYS: the key.  ARGV: the owner's value, lease ms.  Returns 1, or 0 if lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
