-- What a mailbox holds, for views: {exists, entries, handed out or queued by the
-- reader, last handed-out id, dead, corrupt, queued by the reader}.
-- KEYS: cfg, stream, dead, corrupt, queued.  ARGV: group.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, '0-0', 0, 0, 0} end
local last = '0-0'
local handed = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
    local name, ldid
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then ldid = group[i + 1] end
    end
    if name == ARGV[1] then last = ldid end
  end
  handed = redis.call('XPENDING', KEYS[2], ARGV[1])[1]
end
return {1, redis.call('XLEN', KEYS[2]), handed, last, redis.call('LLEN', KEYS[3]), redis.call('LLEN', KEYS[4]),
        redis.call('LLEN', KEYS[5])}
