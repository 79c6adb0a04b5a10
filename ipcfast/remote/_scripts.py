"""The Lua scripts a remote queue runs on the server: each is one atomic step, so that the
stream, its consumer group and the unfinished-task counter never disagree, whatever
process dies or whatever connection drops between two of them.

Keys of a queue NAME (one hash tag, so that Redis Cluster keeps them in one slot):
``ipcfast:{NAME}:stream`` (the stream; its one consumer group is ``ipcfast``),
``ipcfast:{NAME}:unfinished`` (items put and not yet acknowledged: what ``join`` waits on)
and ``ipcfast:{NAME}:undelivered`` (items put and not yet handed to any consumer: ``qsize``
and the ``maxsize`` bound). An entry is one field ``d`` holding the serialized item.
Acknowledged entries are trimmed from the head of the stream (XTRIM MINID: everything
older than the oldest entry still pending or undelivered), never deleted one by one
(XDEL in the middle of a stream costs several times an XADD).
"""

# KEYS: stream, unfinished, undelivered. ARGV: maxsize, payload...
# -> n (all added) or -(1 + undelivered) when they do not fit under maxsize (none added).
PUT = """
local n = #ARGV - 1
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  local u = tonumber(redis.call('GET', KEYS[3]) or '0')
  if u + n > maxsize then return -1 - u end
end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end
redis.call('INCRBY', KEYS[2], n)
redis.call('INCRBY', KEYS[3], n)
return n
"""

# KEYS: stream, undelivered. ARGV: group, consumer, count, min_idle_ms, reclaim (0/1).
# -> {reclaimed (0/1), {id, payload, id, payload, ...}, last id}. First (if reclaim) the
# entries another consumer got and has not acknowledged for min_idle_ms (XAUTOCLAIM: their
# delivery count grows), else new entries (XREADGROUP >, which does not block inside a script). When there
# are none, the stream's last-generated id: the caller waits (XREAD BLOCK) for anything
# newer. Recreates the group (from the stream's start) when it is missing (a server
# restarted without its data).
TAKE = """
local out = {}
if ARGV[5] == '1' then
  local r = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])
  if type(r) == 'table' and r.err == nil then
    for _, e in ipairs(r[2]) do
      if e[2] then out[#out + 1] = e[1]; out[#out + 1] = e[2][2] end
    end
    if #out > 0 then return {1, out, ''} end
  end
end
local read = {'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>'}
local rd = redis.pcall(unpack(read))
if type(rd) == 'table' and rd.err ~= nil then
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  rd = redis.call(unpack(read))
end
if rd then
  for _, e in ipairs(rd[1][2]) do out[#out + 1] = e[1]; out[#out + 1] = e[2][2] end
  redis.call('DECRBY', KEYS[2], #out / 2)
  return {0, out, ''}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then return {0, out, info[i + 1]} end
end
return {0, out, '0-0'}
"""

# KEYS: stream, unfinished. ARGV: group, trim (0/1), id... (at most a few thousand) -> how
# many were acknowledged now. An id already acknowledged (by this or another consumer it was handed
# to after its visibility timeout) is not counted again, so the counter cannot go below
# the truth. Then (if trim) trims what no consumer can need any more.
ACK = """
local n = redis.pcall('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
if type(n) ~= 'number' then return 0 end
if n > 0 then redis.call('DECRBY', KEYS[2], n) end
if ARGV[2] ~= '1' then return n end
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
local minid = p[2]
if p[1] == 0 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    for i = 1, #g, 2 do
      if g[i] == 'name' and g[i + 1] ~= ARGV[1] then break end
      if g[i] == 'last-delivered-id' then minid = g[i + 1] end
    end
  end
end
if minid then redis.call('XTRIM', KEYS[1], 'MINID', '~', minid) end
return n
"""

# KEYS: stream, unfinished, undelivered. ARGV: group -> {undelivered, pending, unfinished}
STATE = """
local pend = 0
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and p.err == nil then pend = p[1] end
return {tonumber(redis.call('GET', KEYS[3]) or '0'), pend,
        tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
