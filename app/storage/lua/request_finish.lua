-- Record the outcome of a running attempt and decide what comes next, in one step.
--#include _request_status.lua
--#include _stats.lua
--#include _gates.lua
-- KEYS: request (hash), attempts (list), response, due, ended,
--       held (the finishing worker's set of held ids)
-- ARGV: id, attempt, now_ms, outcome ("succeeded", "failed" or "retry"), next_due_ms (retry),
--       horizon_end_ms, attempt_record (JSON), response (JSON),
--       last_error ("" for none), channel (notified of the end), worker (the finishing worker)
-- ARGV: breaker_result ("failure", "success" or "": see settle_gates in _gates.lua),
--       breaker_failures (in a row that open a breaker), breaker_cooldown_ms
-- The attempt's flow slot and probe are given back, which may wake waiting requests: their
-- {id, attempt, due_ms} follow in the reply from its third item on, for the caller to publish.
-- "retry" turns into "failed" here when the attempt limit is used up. A retry shows "retrying"
-- until its attempt starts, whether it is published now or waits for the relay.
-- KEYS: outcomes (histogram hash of durations by outcome, and "worker_lost" -> attempts),
--       deliveries (per minute)
-- ARGV: worker_lost ("1": the attempt's worker died, nothing was measured; "" otherwise),
--       elapsed_ms (the HTTP exchange's duration), duration_bounds (bucket bounds in ms),
--       minutes_kept (of the per-minute deliveries)
-- The attempt is counted with its duration under its outcome (after the limit's turn), or as
-- "worker_lost" without one; one whose worker finished it counts a delivery in the current minute.
-- KEYS: outbox (notices owed, storage/outbox.py)
-- ARGV: notice (the callback's outbox entry, recorded when the request ends; "" when it has none)
-- Returns {"publish", next_due_ms} (caller publishes the next attempt now), {"scheduled", ""},
-- {"ended", final status}, {"canceled", ""} (canceled while running; recorded only) or
-- {"stale"}, each followed by the woken requests.
local id, attempt, now, outcome = ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms), ARG.outcome
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts', 'attempt_limit', 'flow', 'dest')
local status, attempts = fields[1], tonumber(fields[2])
if attempts ~= attempt or (status ~= 'running' and status ~= 'canceled') then
  return {'stale'}
end
redis.call('RPUSH', KEY.attempts, ARG.attempt_record)
-- After that first write: in a full Redis the script is refused before it changes anything.
if redis.call('HGET', KEY.request, 'holder') == ARG.worker then
  redis.call('HDEL', KEY.request, 'holder')
  redis.call('SREM', KEY.held, id)
end
redis.call('SET', KEY.response, ARG.response)
redis.call('HSET', KEY.request, 'last_error', ARG.last_error)
if outcome == 'retry' and attempt >= tonumber(fields[3]) then outcome = 'failed' end
if ARG.worker_lost == '1' then
  redis.call('HINCRBY', KEY.outcomes, 'worker_lost', 1)
else
  observe_ms(KEY.outcomes, tonumber(ARG.elapsed_ms), ARG.duration_bounds, outcome)
  count_minute(KEY.deliveries, now, ARG.minutes_kept)
end
local woken = {'', ''}
settle_gates(id, ARG.breaker_result, now, tonumber(ARG.breaker_failures), tonumber(ARG.breaker_cooldown_ms),
             fields[4], fields[5], woken)
if status == 'canceled' then woken[1] = 'canceled'; return woken end
if outcome == 'retry' then
  local next_due = tonumber(ARG.next_due_ms)
  redis.call('HSET', KEY.request, 'next_attempt_ms', next_due)
  if next_due <= tonumber(ARG.horizon_end_ms) then
    set_status(KEY.request, id, status, 'retrying')
    redis.call('ZADD', KEY.inflight, next_due + tonumber(ARG.grace_ms), id)
    woken[1], woken[2] = 'publish', next_due
    return woken
  end
  set_status(KEY.request, id, status, 'retrying')
  redis.call('ZREM', KEY.inflight, id)
  redis.call('ZADD', KEY.due, next_due, id)
  woken[1] = 'scheduled'
  return woken
end
if ARG.notice ~= '' then redis.call('ZADD', KEY.outbox, now + tonumber(ARG.grace_ms), ARG.notice) end
end_request(KEY.request, id, status, outcome, now, ARG.channel)
woken[1], woken[2] = 'ended', outcome
return woken
