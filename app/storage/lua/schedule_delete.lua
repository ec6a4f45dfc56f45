-- Delete a schedule: its hash, its place in the listing and in the due zset. The requests it made
-- stay (and stay listed under its name) until they expire.
-- KEYS: schedule (hash), schedules (zset of names), schedules_due
-- ARGV: name
-- Returns 1 if it existed, else 0.
redis.call('ZREM', KEY.schedules, ARG.name)
redis.call('ZREM', KEY.schedules_due, ARG.name)
return redis.call('DEL', KEY.schedule)
