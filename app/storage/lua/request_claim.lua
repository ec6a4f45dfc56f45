-- Relay: move requests that fall due within the horizon from the schedule to "queued".
-- Two relays claiming the same id race harmlessly: only the first finds it in the due set.
-- KEYS: 1-7 status indexes, 8 due zset, 9 inflight zset, 10.. one request hash per candidate
-- ARGV: 1 horizon_end_ms, 2 publish_grace_ms, 3.. candidate ids (same order as KEYS 10..)
-- Returns a flat list {id, attempt, due_ms, ...} of the requests claimed, to publish.
--#include _request_status.lua
local horizon_end, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local claimed = {}
for i = 3, #ARGV do
  local id, req = ARGV[i], KEYS[i + 7]
  local due = tonumber(redis.call('ZSCORE', KEYS[8], id))
  if due and due <= horizon_end then
    redis.call('ZREM', KEYS[8], id)
    local status = redis.call('HGET', req, 'status')
    if status == 'scheduled' or status == 'retrying' then
      redis.call('ZADD', KEYS[9], due + grace, id)
      set_status(req, id, status, 'queued')
      local attempt = tonumber(redis.call('HGET', req, 'attempts')) + 1
      table.insert(claimed, id)
      table.insert(claimed, attempt)
      table.insert(claimed, due)
    end
  end
end
return claimed
