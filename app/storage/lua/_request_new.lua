-- Included by the scripts that create requests (request_create.lua, request_create_many.lua,
-- schedule_fire_request.lua): what a new request writes. Needs _request_status.lua included
-- first and the keys `due`, `inflight`, `all` (listing index) and `token_requests` (the index
-- of the requests of the token that made them; any unused key name without one) among the
-- script's KEYS.
--#include _gate_keys.lua

-- Stores a new request and its indexes; returns its status, "queued" (the caller publishes it
-- now: it is due within the horizon) or "scheduled" (the relay will). `gates` is
-- "<destination>\n<flow key>\n<rate> <period ms> <parallelism>" (no flow: empty key and limits).
-- `token` is the id of the token that made it ("" with auth off): kept on the hash, for the
-- expiry sweep to find its index, and the request goes into KEY.token_requests.
local function store_new_request(req, id, now, due, horizon_end, grace, spec, attempt_limit, timeout_ms, gates,
                                 token)
  local status = 'scheduled'
  if due <= horizon_end then status = 'queued' end
  redis.call('HSET', req, 'spec', spec, 'created_ms', now, 'due_ms', due, 'next_attempt_ms', due,
             'attempts', 0, 'attempt_limit', attempt_limit, 'timeout_ms', timeout_ms)
  local dest, flow, limits = string.match(gates, '^([^\n]*)\n([^\n]*)\n(.*)$')
  if dest ~= '' then redis.call('HSET', req, 'dest', dest) end
  if flow ~= '' then
    redis.call('HSET', req, 'flow', flow, 'flow_limits', limits)
    set_flow_limits(flow, limits)
  end
  if token ~= '' then
    redis.call('HSET', req, 'token', token)
    redis.call('ZADD', KEY.token_requests, 0, id)
  end
  set_status(req, id, nil, status)
  redis.call('ZADD', KEY.all, 0, id)
  if status == 'queued' then
    redis.call('ZADD', KEY.inflight, due + grace, id)
  else
    redis.call('ZADD', KEY.due, due, id)
  end
  return status
end
