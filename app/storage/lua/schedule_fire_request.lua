-- Run a schedule whose target is a request: claim the tick and create the deferred request
-- (as request_create.lua does), indexed under the schedule, in one script.
--#include _request_status.lua
--#include _request_new.lua
--#include _schedule_run.lua
-- KEYS: request (hash), due, inflight, all (listing index), schedule_requests (the schedule's
--       index of the requests it made, scores 0, sorted by id as `all`), token_requests (the
--       index of the schedule's token, an unused key name without one)
-- ARGV: id, due_ms, horizon_end_ms, grace_ms (publish grace), spec (JSON, with its "schedule"),
--       attempt_limit, timeout_ms, request_gates, token (what _request_new.lua's store_new_request takes)
-- Returns {"stale"} (nothing written: another caller ran the tick, or the schedule changed) or
-- {"created", status}: "queued" means the caller publishes the request now.
if not claimed() then return {'stale'} end
local status = store_new_request(KEY.request, ARG.id, tonumber(ARG.now_ms), tonumber(ARG.due_ms),
                                 tonumber(ARG.horizon_end_ms), tonumber(ARG.grace_ms), ARG.spec,
                                 ARG.attempt_limit, ARG.timeout_ms, ARG.request_gates, ARG.token)
redis.call('HSET', KEY.request, 'schedule', ARG.name)
redis.call('ZADD', KEY.schedule_requests, 0, ARG.id)
record_run(ARG.id)
return {'created', status}
