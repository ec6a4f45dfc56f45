-- Delete requests that ended before the cutoff and remember their ids in the archive Bloom filter.
-- An aliased request (created by a compat profile) takes its alias with it: the alias key is
-- deleted, and its name goes into the archive too, so the alias answers as expired.
-- KEYS: 1-7 status indexes, 8 ended zset, 9 listing index, 10 archive bitmap,
--       11.. five per candidate: request hash, attempts list, response key, alias key, alias
--       namespace index (the last two any unused key names when the request has no alias)
-- ARGV: 1 cutoff_ms, 2 filter size in bits, 3 hash count, 4.. candidate ids
-- Returns the number of requests expired.
--#include _request_status.lua
local cutoff, bits, hashes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

-- Bloom filter positions by double hashing on sha1(member), computed alike in storage/requests.py.
local function archive(member)
  local digest = redis.sha1hex(member)
  local h1, h2 = tonumber(string.sub(digest, 1, 8), 16), tonumber(string.sub(digest, 9, 16), 16)
  for h = 0, hashes - 1 do
    redis.call('SETBIT', KEYS[10], (h1 + h * h2) % bits, 1)
  end
end

local expired = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local base = 11 + (i - 4) * 5
  local ended = tonumber(redis.call('ZSCORE', KEYS[8], id))
  if ended and ended <= cutoff then
    local fields = redis.call('HMGET', KEYS[base], 'status', 'alias')
    local status, alias = fields[1], fields[2]
    if status then redis.call('ZREM', KEYS[STATUS_SLOT[status]], id) end
    redis.call('DEL', KEYS[base], KEYS[base + 1], KEYS[base + 2])
    redis.call('ZREM', KEYS[8], id)
    redis.call('ZREM', KEYS[9], id)
    archive(id)
    if alias then
      redis.call('DEL', KEYS[base + 3])
      redis.call('ZREM', KEYS[base + 4], id)
      archive(KEYS[base + 3])
    end
    expired = expired + 1
  end
end
return expired
