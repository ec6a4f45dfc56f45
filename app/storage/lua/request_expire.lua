-- Delete requests that ended before the cutoff and remember their ids in the archive Bloom filter.
-- KEYS: 1-7 status indexes, 8 ended zset, 9 listing index, 10 archive bitmap,
--       11.. three per candidate: request hash, attempts list, response key
-- ARGV: 1 cutoff_ms, 2 filter size in bits, 3 hash count, 4.. candidate ids
-- Returns the number of requests expired.
--#include _request_status.lua
local cutoff, bits, hashes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local base = 11 + (i - 4) * 3
  local ended = tonumber(redis.call('ZSCORE', KEYS[8], id))
  if ended and ended <= cutoff then
    local status = redis.call('HGET', KEYS[base], 'status')
    if status then redis.call('ZREM', KEYS[STATUS_SLOT[status]], id) end
    redis.call('DEL', KEYS[base], KEYS[base + 1], KEYS[base + 2])
    redis.call('ZREM', KEYS[8], id)
    redis.call('ZREM', KEYS[9], id)
    -- Bloom filter positions by double hashing on sha1(id), computed alike in storage/requests.py.
    local digest = redis.sha1hex(id)
    local h1, h2 = tonumber(string.sub(digest, 1, 8), 16), tonumber(string.sub(digest, 9, 16), 16)
    for h = 0, hashes - 1 do
      redis.call('SETBIT', KEYS[10], (h1 + h * h2) % bits, 1)
    end
    expired = expired + 1
  end
end
return expired
