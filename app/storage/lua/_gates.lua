-- Included by the scripts that start, settle, cancel and wake deferred requests: the gates an
-- attempt passes before it starts, flow control per key and the circuit breaker per destination
-- (app/core/gates.py says what they promise). A request names its gates in its hash (`flow`,
-- `flow_limits`, `dest`, written at creation), so their keys are built here from that name and
-- the `gates` prefix: they cannot be declared in KEYS before the request is read.
--
-- Waiting never uses an attempt. A request held back by a rate waits for the start time the
-- limiter reserved for it (it is published again with that eta); one held back by parallelism or
-- by an open breaker is parked: out of the schedule, in its gate's waiting set, until a slot frees
-- or the breaker lets a probe through. Whoever frees a slot wakes a waiter at once; the relay's
-- gate sweep (gates_sweep.lua) wakes the rest, so nothing waits on a wake-up that was lost.
--#include _gate_keys.lua
-- KEYS: inflight (the requests' in-flight zset)
-- ARGV: grace_ms (publish grace),
--       lease_margin_ms (a slot's lease is the request's timeout plus this)

local DEST_TTL_MS = 7 * 86400000     -- a destination's breaker state, this long after last changed
local WAKE_CHUNK = 100               -- waiters a closed breaker wakes per script

-- The running set of a flow without the slots whose lease expired (their worker died unnoticed).
local function running_slots(flow, now)
  local running = gate_key('flows', 'running', flow)
  redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
  return running
end

-- Whether a start at `at` keeps every window of `period` ms at `rate` granted starts at most.
-- Quick when the flow is not full or `at` is its latest start (the usual case: starts come in
-- time order); else only the starts within a period of `at` can share a window with it.
local function start_fits(starts, at, rate, period)
  if redis.call('ZCOUNT', starts, '(' .. (at - period), '(' .. (at + period)) < rate then return true end
  local last = redis.call('ZRANGE', starts, -1, -1, 'WITHSCORES')
  if tonumber(last[2]) <= at then return redis.call('ZCOUNT', starts, '(' .. (at - period), at) < rate end
  local near = redis.call('ZRANGEBYSCORE', starts, '(' .. (at - period), '(' .. (at + period), 'WITHSCORES')
  local times = {at}
  for i = 2, #near, 2 do table.insert(times, tonumber(near[i])) end
  table.sort(times)
  for i = 1, #times - rate do
    if times[i + rate] - times[i] < period then return false end
  end
  return true
end

-- The rate's decision for `member` (id#attempt) wanting to start at `send`: `send` itself when
-- the start is granted, else a later time to come back at. Granted starts (the log the limit is
-- kept on: no window of `period` ms holds more than `rate`) are apart from reservations, which
-- only spread the waiters out: each is given the next time the log and the reservations before
-- it leave free, so they come back one by one instead of all at once. A waiter is judged again
-- when it comes back, late or not, against granted starts only: a late one never locks out the
-- others, and every refusal means another request started, so the flow always moves on.
local function rate_admits(flow, member, now, send, rate, period)
  local starts, reserved = gate_key('flows', 'starts', flow), gate_key('flows', 'reserved', flow)
  redis.call('ZREM', reserved, member)
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', '(' .. (now - period))
  if start_fits(starts, send, rate, period) then
    redis.call('ZADD', starts, send, member)
    redis.call('PEXPIRE', starts, send - now + period + 1000)
    return send
  end
  local times = {}
  for _, key in ipairs({starts, reserved}) do
    local tail = redis.call('ZRANGE', key, -rate, -1, 'WITHSCORES')
    for i = 2, #tail, 2 do table.insert(times, tonumber(tail[i])) end
  end
  table.sort(times)
  local at = math.max(send + 1, times[#times])
  if #times >= rate then at = math.max(at, times[#times - rate + 1] + period) end
  redis.call('ZADD', reserved, at, member)
  redis.call('PEXPIRE', reserved, at - now + period + 60000)
  return at
end

local function park(req, id, gate, now)
  redis.call('ZADD', gate_key('waiting', gate), now, id)
  redis.call('ZADD', gate_key('gates', 'waiting'), 0, gate)
  redis.call('HSET', req, 'parked', gate)
  redis.call('ZREM', KEY.inflight, id)
end

-- Half-open: one probe at a time; `lease_ms` bounds how long a probe that never ends holds it.
-- Returns whether `id` may start.
local function breaker_admits(dest, id, now, lease_ms)
  local state = gate_key('dests', 'state', dest)
  local fields = redis.call('HMGET', state, 'open_until', 'probe', 'probe_until')
  local open_until = tonumber(fields[1])
  if not open_until then return true end
  if now < open_until then return false end
  if fields[2] and fields[2] ~= id and (tonumber(fields[3]) or 0) > now then return false end
  redis.call('HSET', state, 'probe', id, 'probe_until', now + lease_ms)
  return true
end

local function release_probe(dest, id)
  local state = gate_key('dests', 'state', dest)
  if dest ~= '' and redis.call('HGET', state, 'probe') == id then redis.call('HDEL', state, 'probe', 'probe_until') end
end

-- Hands a parked request back to the workers, due now: {id, attempt, due} to publish, or nil
-- when it is no longer parked at `gate` (canceled, say). A flow slot is kept for it meanwhile.
local function wake(gate, id, now)
  local req = gate_key('req', id)
  redis.call('ZREM', gate_key('waiting', gate), id)
  local fields = redis.call('HMGET', req, 'status', 'parked', 'attempts', 'timeout_ms', 'flow')
  if fields[2] ~= gate or (fields[1] ~= 'queued' and fields[1] ~= 'retrying') then return nil end
  local grace = tonumber(ARG.grace_ms)
  redis.call('HDEL', req, 'parked')
  redis.call('HSET', req, 'next_attempt_ms', now)
  redis.call('ZADD', KEY.inflight, now + grace, id)
  local lease = now + grace + tonumber(fields[4]) + tonumber(ARG.lease_margin_ms)
  if string.sub(gate, 1, 6) == 'flows:' then
    redis.call('ZADD', gate_key('flows', 'running', fields[5]), lease, id)
  else
    local state = gate_key('dests', 'state', string.sub(gate, 7))
    local open_until = tonumber(redis.call('HGET', state, 'open_until'))
    if open_until and open_until <= now then redis.call('HSET', state, 'probe', id, 'probe_until', lease) end
  end
  return {id, tonumber(fields[3]) + 1, now}
end

-- Wakes up to `count` waiters of `gate` in arrival order, appending them to `out`.
local function wake_some(gate, count, now, out)
  local waiting = gate_key('waiting', gate)
  local woken = 0
  while woken < count do
    local ids = redis.call('ZRANGE', waiting, 0, count - woken - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local due = wake(gate, id, now)
      if due then
        woken = woken + 1
        for _, value in ipairs(due) do table.insert(out, value) end
      end
    end
  end
  if redis.call('EXISTS', waiting) == 0 then redis.call('ZREM', gate_key('gates', 'waiting'), gate) end
  return woken
end

-- Wakes as many waiters of a flow as it has free slots.
local function wake_flow(flow, now, out)
  if flow == '' or redis.call('EXISTS', gate_key('waiting', 'flows:' .. flow)) == 0 then return end
  local _, _, parallelism = flow_limits(flow, nil)
  local free = WAKE_CHUNK
  if parallelism > 0 then free = math.min(free, parallelism - redis.call('ZCARD', running_slots(flow, now))) end
  if free > 0 then wake_some('flows:' .. flow, free, now, out) end
end

-- Wakes the waiters a destination lets through now: a chunk when closed, one probe when half-open.
local function wake_destination(dest, now, out)
  local gate = 'dests:' .. dest
  if dest == '' or redis.call('EXISTS', gate_key('waiting', gate)) == 0 then return end
  local fields = redis.call('HMGET', gate_key('dests', 'state', dest), 'open_until', 'probe', 'probe_until')
  local open_until = tonumber(fields[1])
  if not open_until then
    wake_some(gate, WAKE_CHUNK, now, out)
  elseif open_until <= now and not (fields[2] and (tonumber(fields[3]) or 0) > now) then
    wake_some(gate, 1, now, out)
  end
end

-- Whether the request in `req` may start now; `flow`, `own_limits` and `dest` are its hash's
-- `flow`, `flow_limits` and `dest` (nil for none). Returns {"go", send_ms} (the slots it holds
-- are taken), {"defer", at_ms} (a rate reserved `at_ms` for it) or {"park", gate}.
local function admit(req, id, attempt, now, send, timeout_ms, flow, own_limits, dest)
  flow, dest = flow or '', dest or ''
  local lease = timeout_ms + tonumber(ARG.lease_margin_ms)
  local running, starts_member
  if flow ~= '' then
    local rate, period, parallelism = flow_limits(flow, own_limits)
    if parallelism > 0 then
      running = running_slots(flow, now)
      if not redis.call('ZSCORE', running, id) and redis.call('ZCARD', running) >= parallelism then
        park(req, id, 'flows:' .. flow, now)
        return {'park', 'flows:' .. flow}
      end
    end
    if rate > 0 then
      starts_member = id .. '#' .. attempt
      local at = rate_admits(flow, starts_member, now, send, rate, period)
      if at > send then
        -- The slot stays this request's until it comes back at its reserved time.
        if running then redis.call('ZADD', running, at + tonumber(ARG.grace_ms) + lease, id) end
        return {'defer', at}
      end
    end
  end
  if dest ~= '' and not breaker_admits(dest, id, now, send - now + lease) then
    -- Nothing started: the flow's reservations go back.
    if starts_member then redis.call('ZREM', gate_key('flows', 'starts', flow), starts_member) end
    if running then redis.call('ZREM', running, id) end
    park(req, id, 'dests:' .. dest, now)
    return {'park', 'dests:' .. dest}
  end
  if running then redis.call('ZADD', running, send + lease, id) end
  return {'go', send}
end

-- The request leaves its gates for good or for now (it ended, was canceled, is moved): its
-- waiting place, its flow slot and its probe go, and the slot it freed wakes a waiter.
-- `keep_slot`: it is running still (canceled mid-attempt): its slot goes when the attempt ends.
local function leave_gates(req, id, now, keep_slot, out)
  local fields = redis.call('HMGET', req, 'flow', 'dest', 'parked', 'attempts')
  local flow, dest = fields[1] or '', fields[2] or ''
  if fields[3] then
    redis.call('ZREM', gate_key('waiting', fields[3]), id)
    redis.call('HDEL', req, 'parked')
  end
  if keep_slot then return end
  if flow ~= '' then
    -- The time reserved for its next attempt goes (a start granted stays counted).
    redis.call('ZREM', gate_key('flows', 'reserved', flow), id .. '#' .. (tonumber(fields[4]) + 1))
  end
  if flow ~= '' and redis.call('ZREM', gate_key('flows', 'running', flow), id) == 1 then
    wake_flow(flow, now, out)
  end
  release_probe(dest, id)
end

-- After an attempt: its flow slot is given back (waking a waiter), and its news goes to its
-- destination's breaker: "failure" (retryable), "success" (the destination answered) or ""
-- (nothing learned: the worker died, the target was refused). `failures` in a row open it for
-- `cooldown_ms`; a failed probe opens it again; a success closes it and wakes its waiters, a
-- chunk at a time: the breaker stays "draining" while some wait, so each later success wakes
-- more. `flow` and `dest` are the request's (nil for none). A healthy destination costs one read.
local function settle_gates(id, news, now, failures, cooldown_ms, flow, dest, out)
  if flow and redis.call('ZREM', gate_key('flows', 'running', flow), id) == 1 then wake_flow(flow, now, out) end
  if not dest then return end
  local state = gate_key('dests', 'state', dest)
  local fields = redis.call('HMGET', state, 'open_until', 'probe', 'failures', 'draining')
  if not (fields[1] or fields[2] or fields[3] or fields[4]) and news ~= 'failure' then return end
  if fields[2] == id then redis.call('HDEL', state, 'probe', 'probe_until') end
  if news == 'success' then
    redis.call('DEL', state)
    redis.call('ZREM', gate_key('dests'), dest)
    wake_destination(dest, now, out)
    if redis.call('EXISTS', gate_key('waiting', 'dests:' .. dest)) == 1 then
      redis.call('HSET', state, 'draining', 1)
      redis.call('PEXPIRE', state, DEST_TTL_MS)
    end
  elseif news == 'failure' then
    local count = redis.call('HINCRBY', state, 'failures', 1)
    redis.call('ZADD', gate_key('dests'), 0, dest)
    if fields[2] == id or (not fields[1] and count >= failures) then
      redis.call('HSET', state, 'open_until', now + cooldown_ms, 'opened_ms', now)
      redis.call('HDEL', state, 'probe', 'probe_until')
    end
    redis.call('PEXPIRE', state, DEST_TTL_MS)
  end
end
