-- Delete a request's stored response and mark it deleted, so it reads as deleted, not as never
-- received. The delete comes first: in a full Redis (maxmemory, noeviction) a script's writes are
-- refused only until its first one, so this frees memory where a MULTI would be refused whole.
-- KEYS: request (hash), response
-- Returns 1, or 0 when the request is gone (nothing is written for it).
if redis.call('EXISTS', KEY.request) == 0 then return 0 end
redis.call('DEL', KEY.response)
redis.call('HSET', KEY.request, 'response_deleted', 1)
return 1
