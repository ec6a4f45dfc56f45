-- Revoke an API token: delete it under its id and under its digest, both or neither.
-- KEYS: tokens (hash id -> record), digests (hash digest -> record)
-- ARGV: id
-- Returns 1 if it existed, else 0.
local record = redis.call('HGET', KEY.tokens, ARG.id)
if not record then return 0 end
redis.call('HDEL', KEY.digests, cjson.decode(record).digest)
redis.call('HDEL', KEY.tokens, ARG.id)
return 1
