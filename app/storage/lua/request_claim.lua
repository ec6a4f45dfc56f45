-- Relay: hand to the workers the requests that fall due within the horizon: out of the schedule,
-- in flight; a first attempt becomes "queued", a retry stays "retrying" until it starts.
-- Two relays claiming the same id race harmlessly: only the first finds it in the due set.
--#include _request_status.lua
-- KEYS: due, inflight, ...requests (one request hash per candidate, in the order of ARGV ids)
-- ARGV: horizon_end_ms, grace_ms (publish grace), ...ids (the candidates)
-- Returns a flat list {id, attempt, due_ms, ...} of the requests claimed, to publish.
local horizon_end, grace = tonumber(ARG.horizon_end_ms), tonumber(ARG.grace_ms)
local claimed = {}
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local due = tonumber(redis.call('ZSCORE', KEY.due, id))
  if due and due <= horizon_end then
    redis.call('ZREM', KEY.due, id)
    local status = redis.call('HGET', req, 'status')
    if status == 'scheduled' or status == 'retrying' then
      redis.call('ZADD', KEY.inflight, due + grace, id)
      if status == 'scheduled' then set_status(req, id, status, 'queued') end
      local attempt = tonumber(redis.call('HGET', req, 'attempts')) + 1
      table.insert(claimed, id)
      table.insert(claimed, attempt)
      table.insert(claimed, due)
    end
  end
end
return claimed
