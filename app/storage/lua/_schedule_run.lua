-- Included by the schedule_fire_*.lua scripts: the claim of a tick (a compare-and-set on what the
-- caller read) and the bookkeeping of a run, written by the same script as the run's effect, so
-- a tick is never claimed without its effect nor its effect written twice.
-- KEYS: schedule (hash), schedules_due (zset: name -> next tick ms)
-- ARGV: name (the schedule's), version (of the schedule the caller read; a PUT increments it),
--       expected_ms (the next tick the caller read; "" for a run outside the timetable),
--       run_ms (the tick run), next_ms (the tick after it, the caller's cron or interval step),
--       now_ms

-- Whether this caller may run: the schedule is the one read (not deleted or replaced) and, for a
-- timetable run, not paused and its next tick is still the one read (no other beat ran it).
local function claimed()
  local f = redis.call('HMGET', KEY.schedule, 'version', 'next_ms', 'paused')
  if f[1] ~= ARG.version then return false end
  if ARG.expected_ms == '' then return true end
  return f[2] == ARG.expected_ms and f[3] ~= '1'
end

-- A timetable run moves the timetable on to next_ms; a run outside it leaves it.
local function advance()
  if ARG.expected_ms ~= '' then
    redis.call('HSET', KEY.schedule, 'next_ms', ARG.next_ms)
    redis.call('ZADD', KEY.schedules_due, tonumber(ARG.next_ms), ARG.name)
  end
end

local function record_run(run_id)
  redis.call('HINCRBY', KEY.schedule, 'runs', 1)
  redis.call('HSET', KEY.schedule, 'last_run_ms', ARG.run_ms, 'last_run_id', run_id, 'last_error', '')
  advance()
end

-- A run whose effect was refused (its batch is gone): the tick is used up all the same, so beat
-- does not try it again every second, and the reason is kept for the resource.
local function record_refusal(reason)
  if ARG.expected_ms ~= '' then
    redis.call('HSET', KEY.schedule, 'last_error', reason)
    advance()
  end
end
