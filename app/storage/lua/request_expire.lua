-- Delete requests that ended before the cutoff and remember their ids in the archive Bloom filter.
-- An aliased request (created by a compat profile) takes its alias with it: the alias key is
-- deleted, and its name goes into the archive too, so the alias answers as expired. Notices
-- still owed about an expired request go from the outbox: there is nothing left to tell. A
-- request a schedule made leaves that schedule's index, and one a token made that token's.
--#include _request_status.lua
-- KEYS: ended, all (listing index), archive (bitmap), outbox (notices owed, storage/outbox.py),
--       ...requests (seven per candidate: request hash, attempts list, response key, alias key,
--       alias namespace index (any unused key names when the request has no alias), the index of
--       the schedule that made it, the index of the token that made it (unused key names when
--       none did))
-- ARGV: cutoff_ms, archive_bits (filter size), archive_hashes (hash count),
--       notice_kinds (space-separated; an entry is "<kind>:<id>"), ...ids (candidates)
-- Returns the number of requests expired.
local cutoff, bits, hashes = tonumber(ARG.cutoff_ms), tonumber(ARG.archive_bits), tonumber(ARG.archive_hashes)

-- Bloom filter positions by double hashing on sha1(member), computed alike in storage/requests.py.
local function archive(member)
  local digest = redis.sha1hex(member)
  local h1, h2 = tonumber(string.sub(digest, 1, 8), 16), tonumber(string.sub(digest, 9, 16), 16)
  for h = 0, hashes - 1 do
    redis.call('SETBIT', KEY.archive, (h1 + h * h2) % bits, 1)
  end
end

local expired = 0
for i, id in ipairs(ARG.ids) do
  local base = (i - 1) * 7
  local req, attempts, response = KEY.requests[base + 1], KEY.requests[base + 2], KEY.requests[base + 3]
  local alias_key, alias_index = KEY.requests[base + 4], KEY.requests[base + 5]
  local schedule_index, token_index = KEY.requests[base + 6], KEY.requests[base + 7]
  local ended = tonumber(redis.call('ZSCORE', KEY.ended, id))
  if ended and ended <= cutoff then
    local fields = redis.call('HMGET', req, 'status', 'alias', 'schedule', 'token')
    local status, alias = fields[1], fields[2]
    if fields[3] then redis.call('ZREM', schedule_index, id) end
    if fields[4] then redis.call('ZREM', token_index, id) end
    if status then redis.call('ZREM', KEY['status_' .. status], id) end
    redis.call('DEL', req, attempts, response)
    redis.call('ZREM', KEY.ended, id)
    redis.call('ZREM', KEY.all, id)
    archive(id)
    for kind in string.gmatch(ARG.notice_kinds, '%S+') do
      redis.call('ZREM', KEY.outbox, kind .. ':' .. id)
    end
    if alias then
      redis.call('DEL', alias_key)
      redis.call('ZREM', alias_index, id)
      archive(alias_key)
    end
    expired = expired + 1
  end
end
return expired
