-- The virtual clock moved ahead: in-flight requests handed to workers with an eta that is now
-- past in the timetable are taken to publish again at once (the workers hold their messages until
-- the system's time reaches that eta). Each is put a grace later, as a publish; the message it
-- had is dropped at its start (that attempt is taken).
-- KEYS: inflight, ...requests (one request hash per candidate, in the order of ARGV ids)
-- ARGV: now_ms, grace_ms (publish grace), ...ids (the candidates: in flight, deadline within a grace)
-- Returns a flat list {id, attempt, due_ms, ...} of the requests to publish, earliest due first.
local now, grace = tonumber(ARG.now_ms), tonumber(ARG.grace_ms)
local due = {}
for i, id in ipairs(ARG.ids) do
  local fields = redis.call('HMGET', KEY.requests[i], 'status', 'attempts', 'next_attempt_ms')
  local next_ms = tonumber(fields[3])
  if (fields[1] == 'queued' or fields[1] == 'retrying') and next_ms and next_ms <= now then
    redis.call('ZADD', KEY.inflight, now + grace, id)
    due[#due + 1] = {id, tonumber(fields[2]) + 1, next_ms}
  end
end
table.sort(due, function(a, b) return a[3] < b[3] end)
local out = {}
for _, item in ipairs(due) do
  out[#out + 1] = item[1]; out[#out + 1] = item[2]; out[#out + 1] = item[3]
end
return out
