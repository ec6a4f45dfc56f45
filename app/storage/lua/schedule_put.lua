-- Create or replace a schedule: its definition, its place in the listing and in the due zset.
-- Runs so far and the last run are kept across a replace; the version goes up, so a beat that
-- read the old definition runs nothing (see _schedule_run.lua).
-- KEYS: schedule (hash), schedules (zset of names, scores 0), schedules_due (zset: name -> next tick ms)
-- ARGV: name, now_ms, spec (JSON: cron|every, timezone, target), anchor_ms (of `every` ticks),
--       next_ms (the first tick), paused ("1" or "0")
-- Returns 1 if created, 0 if replaced.
local created = redis.call('EXISTS', KEY.schedule) == 0
if created then redis.call('HSET', KEY.schedule, 'created_ms', ARG.now_ms, 'runs', 0) end
redis.call('HINCRBY', KEY.schedule, 'version', 1)
redis.call('HSET', KEY.schedule, 'spec', ARG.spec, 'anchor_ms', ARG.anchor_ms, 'next_ms', ARG.next_ms,
           'paused', ARG.paused, 'updated_ms', ARG.now_ms, 'last_error', '')
redis.call('ZADD', KEY.schedules, 0, ARG.name)
if ARG.paused == '1' then
  redis.call('ZREM', KEY.schedules_due, ARG.name)
else
  redis.call('ZADD', KEY.schedules_due, tonumber(ARG.next_ms), ARG.name)
end
if created then return 1 end
return 0
