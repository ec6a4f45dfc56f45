-- Pause a schedule (out of the due zset) or resume it (back in, at the next tick after now).
-- KEYS: schedule (hash), schedules_due (zset: name -> next tick ms)
-- ARGV: name, paused ("1" or "0"), next_ms (resume: the next tick after now; ignored on pause),
--       version (of the schedule read, whose timetable gave next_ms)
-- Returns "missing", "stale" (replaced since it was read: nothing written) or "ok".
local version = redis.call('HGET', KEY.schedule, 'version')
if not version then return 'missing' end
if version ~= ARG.version then return 'stale' end
if ARG.paused == '1' then
  redis.call('HSET', KEY.schedule, 'paused', '1')
  redis.call('ZREM', KEY.schedules_due, ARG.name)
elseif redis.call('HGET', KEY.schedule, 'paused') == '1' then
  redis.call('HSET', KEY.schedule, 'paused', '0', 'next_ms', ARG.next_ms)
  redis.call('ZADD', KEY.schedules_due, tonumber(ARG.next_ms), ARG.name)
end
return 'ok'
