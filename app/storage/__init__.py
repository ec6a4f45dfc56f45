"""The Redis layer shared by the web side and the workers: key schema, Lua scripts, connections."""
