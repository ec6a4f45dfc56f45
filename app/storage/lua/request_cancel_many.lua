-- Bulk cancel, one chunk: each request of ARGV ids that matches the filters and has not ended is
-- canceled as request_cancel.lua cancels one (its cancel notice recorded in the outbox when its
-- spec asks and something was sent). The caller walks the candidates in chunks, so that Redis is
-- never blocked for long.
--#include _request_status.lua
--#include _gates.lua
-- KEYS: due, ended, outbox (notices owed, storage/outbox.py),
--       ...requests (one request hash per id, in ARGV's order)
-- ARGV: now_ms, channel_prefix (a request's end channel: this and its id),
--       notice_prefix (a cancel notice's outbox entry: this and the id),
--       statuses (space-separated: only requests in these; "" for any), url_prefix ("" for any),
--       token (only requests this token made, by their `token` field; "" for any), ...ids (the candidates)
-- Returns {number canceled, then the ids that owe a cancel notice}.
local now, grace = tonumber(ARG.now_ms), tonumber(ARG.grace_ms)
local wanted = {}
for status in string.gmatch(ARG.statuses, '%S+') do wanted[status] = true end
local any_status, prefix = ARG.statuses == '', ARG.url_prefix
local out = {0}
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local fields = redis.call('HMGET', req, 'status', 'attempts', 'spec', 'token')
  local status = fields[1]
  if (status == 'scheduled' or status == 'queued' or status == 'running' or status == 'retrying')
      and (any_status or wanted[status]) and (ARG.token == '' or fields[4] == ARG.token) then
    -- A spec too deep for cjson (stored before depth was limited) matches no url prefix.
    local ok, spec = pcall(cjson.decode, fields[3])
    if not ok then spec = {} end
    if prefix == '' or (type(spec.url) == 'string' and string.sub(spec.url, 1, #prefix) == prefix) then
      redis.call('ZREM', KEY.due, id)
      leave_gates(req, id, now, status == 'running', {})
      end_request(req, id, status, 'canceled', now, ARG.channel_prefix .. id)
      out[1] = out[1] + 1
      if spec.cancel_notify == true and (status == 'running' or tonumber(fields[2]) > 0) then
        redis.call('ZADD', KEY.outbox, now + grace, ARG.notice_prefix .. id)
        out[#out + 1] = id
      end
    end
  end
end
return out
