"""The Lua scripts a remote queue runs on the server: each is one atomic step, so that the
stream, its consumer group and the unfinished-task counter never disagree, whatever
process dies or whatever connection drops between two of them.

Keys of a queue NAME (one hash tag, so that Redis Cluster keeps them in one slot):
``ipcfast:{NAME}:stream`` (the stream; group ``ipcfast``) and ``ipcfast:{NAME}:unfinished``
(items put and not yet acknowledged: what ``join`` waits on). An entry is one field ``d``
holding the serialized item. An acknowledged entry is deleted from the stream, so the
stream's length is the number of items not yet acknowledged (undelivered + in flight).
"""

# KEYS: stream, unfinished. ARGV: maxsize, group, payload...
# -> n (all added) or -(1 + undelivered) when they do not fit under maxsize (none added).
PUT = """
local n = #ARGV - 2
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  local undelivered = redis.call('XLEN', KEYS[1])
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[2])
  if type(p) == 'table' and p.err == nil then undelivered = undelivered - p[1] end
  if undelivered + n > maxsize then return -1 - undelivered end
end
for i = 3, #ARGV do redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end
redis.call('INCRBY', KEYS[2], n)
return n
"""

# KEYS: stream. ARGV: group, consumer, count, min_idle_ms.
# -> {reclaimed (0/1), {id, payload, id, payload, ...}}. First the entries another consumer
# got and has not acknowledged for min_idle_ms (XAUTOCLAIM: their delivery count grows),
# else new entries (XREADGROUP >, which does not block inside a script). Recreates the
# group (from the stream's start) when it is missing (a server restarted without its data).
TAKE = """
local r = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])
if type(r) == 'table' and r.err ~= nil then
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])
end
local out = {}
for _, e in ipairs(r[2]) do
  if e[2] then out[#out + 1] = e[1]; out[#out + 1] = e[2][2] end
end
if #out > 0 then return {1, out} end
local rd = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if rd then
  for _, e in ipairs(rd[1][2]) do out[#out + 1] = e[1]; out[#out + 1] = e[2][2] end
end
return {0, out}
"""

# KEYS: stream, unfinished. ARGV: group, id... -> how many were acknowledged now.
# An id already acknowledged (by this or another consumer it was handed to after its
# visibility timeout) is not counted again, so the counter cannot go below the truth.
ACK = """
local n = 0
for i = 2, #ARGV do
  local a = redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[i])
  if a == 1 then redis.call('XDEL', KEYS[1], ARGV[i]); n = n + 1 end
end
if n > 0 then redis.call('DECRBY', KEYS[2], n) end
return n
"""

# KEYS: stream, unfinished. ARGV: group -> {length, pending, unfinished}
STATE = """
local len = redis.call('XLEN', KEYS[1])
local pend = 0
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and p.err == nil then pend = p[1] end
return {len, pend, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
