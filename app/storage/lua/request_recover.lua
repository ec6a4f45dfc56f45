-- Relay: handle in-flight requests whose deadline passed. A "queued" one was published but never
-- started (a lost publish or a lost broker message): publish it again. A "running" one held a lease
-- that expired (its worker died): hand it back so the caller records the attempt as lost.
-- KEYS: 1-7 status indexes, 8 inflight zset, 9.. one request hash per candidate
-- ARGV: 1 now_ms, 2 publish_grace_ms, 3.. candidate ids (same order as KEYS 9..)
-- Returns a flat list {kind, id, attempt, due_ms, ...}, kind "republish" or "lost".
local now, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local id, req = ARGV[i], KEYS[i + 6]
  local deadline = tonumber(redis.call('ZSCORE', KEYS[8], id))
  if deadline and deadline <= now then
    local fields = redis.call('HMGET', req, 'status', 'attempts', 'next_attempt_ms')
    local status, attempts = fields[1], tonumber(fields[2])
    if status == 'queued' then
      redis.call('ZADD', KEYS[8], now + grace, id)
      table.insert(out, 'republish'); table.insert(out, id)
      table.insert(out, attempts + 1); table.insert(out, tonumber(fields[3]) or now)
    elseif status == 'running' then
      -- Keep it in flight until the caller settles the attempt, so it is reported once a grace.
      redis.call('ZADD', KEYS[8], now + grace, id)
      table.insert(out, 'lost'); table.insert(out, id)
      table.insert(out, attempts); table.insert(out, now)
    else
      redis.call('ZREM', KEYS[8], id)
    end
  end
end
return out
