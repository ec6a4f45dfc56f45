-- Create many deferred requests at once (the batch route): for each, what request_create.lua
-- writes without an idempotency key. One script call, so the batch is stored all at once.
--#include _request_status.lua
--#include _request_new.lua
-- KEYS: due, inflight, all (listing index), token_requests (the maker token's index),
--       ...requests (one request hash per item)
-- ARGV: now_ms, horizon_end_ms, grace_ms (publish grace), token (the maker token's id, "" for none),
--       ...items (6 per item: id, due_ms, spec JSON, attempt_limit, timeout_ms, gates)
-- Returns the status of each item in order: "queued" (publish it now) or "scheduled".
local now, horizon_end, grace = tonumber(ARG.now_ms), tonumber(ARG.horizon_end_ms), tonumber(ARG.grace_ms)
local items = ARG.items
local statuses = {}
for i = 1, #KEY.requests do
  local a = (i - 1) * 6
  local id, due, req = items[a + 1], tonumber(items[a + 2]), KEY.requests[i]
  local status = store_new_request(req, id, now, due, horizon_end, grace, items[a + 3], items[a + 4], items[a + 5],
                                  items[a + 6], ARG.token)
  statuses[#statuses + 1] = status
end
return statuses
