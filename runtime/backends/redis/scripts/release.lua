-- Delete a lease key only if it still holds this owner's value.
-- KEYS: the key.  ARGV: the owner's value.  Returns 1 if deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
