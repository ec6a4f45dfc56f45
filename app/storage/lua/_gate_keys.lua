-- Included by _gates.lua and by the scripts that create requests: the names of the gates' keys
-- (built from the `gates` prefix and a flow key or destination, both free text after it) and a
-- flow key's limits.
-- ARGV: gates (key prefix: keys.gates_prefix())

local LIMITS_TTL_MS = 30 * 86400000  -- a key's latest limits, kept this long after last sent

local function gate_key(...) return ARG.gates .. table.concat({...}, ':') end

-- The limits in force for `flow`: the latest sent, or (once those expired) the request's own.
local function flow_limits(flow, own)
  local limits_key = gate_key('flows', 'limits', flow)
  local limits = redis.call('HMGET', limits_key, 'rate', 'period_ms', 'parallelism')
  if not limits[1] then
    local rate, period, parallelism = string.match(own or '', '^(%d+) (%d+) (%d+)$')
    if not rate then return 0, 1000, 0 end
    redis.call('HSET', limits_key, 'rate', rate, 'period_ms', period, 'parallelism', parallelism)
    redis.call('PEXPIRE', limits_key, LIMITS_TTL_MS)
    limits = {rate, period, parallelism}
  end
  return tonumber(limits[1]), tonumber(limits[2]), tonumber(limits[3])
end

-- Stores a key's limits as sent with a new request (the latest apply to every request of the key).
local function set_flow_limits(flow, limits)
  if flow == '' then return end
  local rate, period, parallelism = string.match(limits, '^(%d+) (%d+) (%d+)$')
  local limits_key = gate_key('flows', 'limits', flow)
  redis.call('HSET', limits_key, 'rate', rate, 'period_ms', period, 'parallelism', parallelism)
  redis.call('PEXPIRE', limits_key, LIMITS_TTL_MS)
end

