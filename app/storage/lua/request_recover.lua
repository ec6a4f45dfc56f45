-- Relay: handle in-flight requests whose deadline passed. A "queued" one was published but never
-- started (a lost publish or a lost broker message): publish it again. A "running" one held a lease
-- that expired (its worker died): hand it back so the caller records the attempt as lost.
-- KEYS: inflight, ...requests (one request hash per candidate, in the order of ARGV ids)
-- ARGV: now_ms, grace_ms (publish grace), ...ids (the candidates)
-- Returns a flat list {kind, id, attempt, due_ms, ...}, kind "republish" or "lost".
local now, grace = tonumber(ARG.now_ms), tonumber(ARG.grace_ms)
local out = {}
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local deadline = tonumber(redis.call('ZSCORE', KEY.inflight, id))
  if deadline and deadline <= now then
    local fields = redis.call('HMGET', req, 'status', 'attempts', 'next_attempt_ms')
    local status, attempts = fields[1], tonumber(fields[2])
    if status == 'queued' then
      redis.call('ZADD', KEY.inflight, now + grace, id)
      table.insert(out, 'republish'); table.insert(out, id)
      table.insert(out, attempts + 1); table.insert(out, tonumber(fields[3]) or now)
    elseif status == 'running' then
      -- Keep it in flight until the caller settles the attempt, so it is reported once a grace.
      redis.call('ZADD', KEY.inflight, now + grace, id)
      table.insert(out, 'lost'); table.insert(out, id)
      table.insert(out, attempts); table.insert(out, now)
    else
      redis.call('ZREM', KEY.inflight, id)
    end
  end
end
return out
