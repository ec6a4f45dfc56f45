-- Included after _queue_common.lua by the scripts that dead-letter (receive, stats, sweep,
-- visibility): a queue whose config names a `dead_letter_queue` moves each message it
-- dead-letters there, in the same script, as a new visible message of that queue (same id, body,
-- attributes and enqueued time; receive count 0; its retention counted from the move). When the
-- target no longer exists (deleted since it was named) the message goes to the queue's own dead
-- letters, as it would without a target.
-- The target's keys must come in through KEYS, but only the config names the target: the caller
-- passes the name it believes (storage/queues.py remembers it per queue) with that queue's keys
-- (the queue's own keys when it believes there is none), and `dead_letter_target_changed()`
-- answers the name the config holds when it differs, before the script writes anything; the
-- caller then runs the script again with that target's keys.
-- KEYS: dlq_config, dlq_ready, dlq_bodies, dlq_meta, dlq_ages, dlq_attrs (the target queue's, see above)
-- ARGV: dead_letter_queue (the target the caller believes the config names, "" for none),
--       dlq_channel (the target's notify channel)

-- {"dead_letter_queue", name} when the config names another target than the caller passed.
local function dead_letter_target_changed()
  local named = redis.call('HGET', Q_CFG, 'dead_letter_queue') or ''
  if named ~= ARG.dead_letter_queue then return {'dead_letter_queue', named} end
  return nil
end

if ARG.dead_letter_queue ~= '' then
  local to_own_dead_letters = dead_letter
  dead_letter = function(now, id, avail, enq, count, first)
    local body = redis.call('HGET', Q_BODIES, id)
    if not body or redis.call('EXISTS', KEY.dlq_config) == 0 or redis.call('HEXISTS', KEY.dlq_meta, id) == 1 then
      return to_own_dead_letters(now, id, avail, enq, count, first)
    end
    local attrs = redis.call('HGET', Q_ATTRS, id)
    redis.call('ZREM', Q_DEAD, id)
    redis.call('ZREM', Q_AGES, id)
    redis.call('HDEL', Q_BODIES, id)
    redis.call('HDEL', Q_META, id)
    redis.call('HSET', KEY.dlq_bodies, id, body)
    if attrs then
      redis.call('HDEL', Q_ATTRS, id)
      redis.call('HSET', KEY.dlq_attrs, id, attrs)
    end
    redis.call('HSET', KEY.dlq_meta, id, meta_text(now, enq, 0, ''))
    redis.call('ZADD', KEY.dlq_ready, now, id)
    redis.call('ZADD', KEY.dlq_ages, now, id)
    redis.call('PUBLISH', ARG.dlq_channel, 1)
  end
end
