-- Included by drain.lua and commit_ack.lua (lua.py inlines it where `--#include lib_hand_out` stands).
-- Hand out new entries of `stream` to `consumer` ('0': all, else at most `count`), the
-- bell cleared first (a delivery after this rings it again for wait()). Returns the
-- entries flat (id, message, id, message, ...: fewer nested replies to parse) and 1
-- when entries wait past those handed out, else 0.
local function hand_out(stream, bell, group, consumer, count)
  redis.call('DEL', bell)
  local r
  if count == '0' then
    r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'STREAMS', stream, '>')
  else
    r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
  end
  if not r then return {}, 0 end
  local entries = r[1][2]
  local more = 0
  if #entries > 0 then
    local after = redis.call('XRANGE', stream, '(' .. entries[#entries][1], '+', 'COUNT', 1)
    if #after > 0 then more = 1 end
  end
  local flat = {}
  for _, e in ipairs(entries) do
    flat[#flat + 1] = e[1]
    local fields = e[2]
    flat[#flat + 1] = (fields and fields[2]) or ''
  end
  return flat, more
end
