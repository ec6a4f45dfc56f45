-- Store a new API token under its id and under the digest of its secret (never the secret).
-- KEYS: tokens (hash id -> record), digests (hash digest -> record)
-- ARGV: id, digest, record (JSON, with its digest)
-- Returns 1 if stored, 0 if the id or the digest was already taken (nothing written).
if redis.call('HEXISTS', KEY.tokens, ARG.id) == 1 or redis.call('HEXISTS', KEY.digests, ARG.digest) == 1 then
  return 0
end
redis.call('HSET', KEY.tokens, ARG.id, ARG.record)
redis.call('HSET', KEY.digests, ARG.digest, ARG.record)
return 1
