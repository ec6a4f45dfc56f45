-- Included by the scripts that count for /metrics (storage/stats.py reads what they write). A
-- counter is a hash field incremented by the script that changes the state it counts, so it
-- counts the whole deployment, survives restarts of any process and costs no round trip.
-- A histogram is a hash: field = the upper bound (ms) of the bucket an observation fell in, or
-- "inf" above the last bound (one field per bucket, not cumulative), and "sum_ms".

-- Adds `value_ms` to the histogram `key`; `bounds` are the bucket bounds in ms, ascending and
-- space-separated, as storage/stats.py passes them. With a `label`, the bucket's field is
-- "<label> <bound>": one hash holds a histogram per label value, and the counts per label are
-- the sums of its buckets (so an attempt's outcome and duration cost one increment, not two).
local function observe_ms(key, value_ms, bounds, label)
  local field = 'inf'
  for bound in string.gmatch(bounds, '%S+') do
    if value_ms <= tonumber(bound) then
      field = bound
      break
    end
  end
  if label then field = label .. ' ' .. field end
  redis.call('HINCRBY', key, field, 1)
  redis.call('HINCRBY', key, 'sum_ms', value_ms)
end

-- Counts one event in the per-minute hash `key` (field = minute since the epoch, now_ms // 60000).
-- The first event of a minute drops the minutes older than `keep` minutes, so the hash stays
-- bounded (keep + 1 fields) and the trimming costs once a minute at most.
local function count_minute(key, now_ms, keep)
  local minute = math.floor(now_ms / 60000)
  if redis.call('HINCRBY', key, minute, 1) == 1 then
    local oldest = minute - tonumber(keep)
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if tonumber(field) <= oldest then redis.call('HDEL', key, field) end
    end
  end
end
