-- A worker stopped (it stopped heartbeating, or it is shutting down): hand back at once what it
-- held. An attempt it received and had not started is published again now (unless `republish`
-- is 0: a worker stopping gracefully puts its task messages back on the broker's queue itself);
-- an attempt it had started is reported lost, for the caller to settle as such and retry. Its
-- registration goes.
-- KEYS: workers (zset: name -> last heartbeat ms), worker (its hash), held (its set),
--       inflight, ...requests (one request hash per held id, in the order of ARGV ids)
-- ARGV: worker (its name), now_ms, grace_ms (publish grace), republish (1 or 0),
--       ...ids (what its held set holds)
-- Returns a flat list {kind, id, attempt, due_ms, ...}, kind "republish" or "lost".
local now, grace, out = tonumber(ARG.now_ms), tonumber(ARG.grace_ms), {}
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local fields = redis.call('HMGET', req, 'status', 'attempts', 'holder', 'next_attempt_ms')
  local status, attempts = fields[1], tonumber(fields[2])
  if fields[3] == ARG.worker then
    redis.call('HDEL', req, 'holder')
    if status == 'queued' or (status == 'retrying' and redis.call('ZSCORE', KEY.inflight, id)) then
      redis.call('ZADD', KEY.inflight, now + grace, id)
      if ARG.republish == '1' then
        table.insert(out, 'republish'); table.insert(out, id)
        table.insert(out, attempts + 1); table.insert(out, tonumber(fields[4]) or now)
      end
    elseif status == 'running' then
      -- Kept in flight until the caller settles the attempt, as request_recover.lua does.
      redis.call('ZADD', KEY.inflight, now + grace, id)
      table.insert(out, 'lost'); table.insert(out, id)
      table.insert(out, attempts); table.insert(out, now)
    end
  end
end
redis.call('DEL', KEY.held, KEY.worker)
redis.call('ZREM', KEY.workers, ARG.worker)
return out
