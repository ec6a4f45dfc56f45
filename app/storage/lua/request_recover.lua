-- Relay: handle in-flight requests whose deadline passed. One handed to the workers and not
-- started ("queued", or "retrying" in flight) waits on if a live worker took it lately (its task
-- message is in that worker's memory; a hold older than that means the message was dropped
-- without a start) or the broker still has messages waiting (it is likely among them);
-- otherwise its publish or its message was lost: publish it again. A "running" one held a lease
-- that expired (its worker died): hand it back so the caller records the attempt as lost.
-- KEYS: inflight, workers (zset: name -> last heartbeat ms), ...requests (one request hash per
--       candidate, in the order of ARGV ids)
-- ARGV: now_ms, grace_ms (publish grace), alive_after_ms (a worker whose last heartbeat is older
--       is dead), held_after_ms (a hold taken earlier is stale), backlog (messages waiting in the
--       broker), ...ids (the candidates)
-- Returns a flat list {kind, id, attempt, due_ms, ...}, kind "republish" or "lost".
local now, grace = tonumber(ARG.now_ms), tonumber(ARG.grace_ms)
local alive_after, backlog = tonumber(ARG.alive_after_ms), tonumber(ARG.backlog)
local out = {}
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local deadline = tonumber(redis.call('ZSCORE', KEY.inflight, id))
  if deadline and deadline <= now then
    local fields = redis.call('HMGET', req, 'status', 'attempts', 'next_attempt_ms', 'holder', 'held_ms')
    local status, attempts, holder = fields[1], tonumber(fields[2]), fields[4]
    if status == 'queued' or status == 'retrying' then
      local held = holder and (tonumber(fields[5]) or 0) > tonumber(ARG.held_after_ms)
        and (tonumber(redis.call('ZSCORE', KEY.workers, holder)) or 0) > alive_after
      redis.call('ZADD', KEY.inflight, now + grace, id)
      if not held and backlog == 0 then
        table.insert(out, 'republish'); table.insert(out, id)
        table.insert(out, attempts + 1); table.insert(out, tonumber(fields[3]) or now)
      end
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
