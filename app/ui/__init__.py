"""The dashboard at /ui: server-rendered pages over the same core services the API uses."""
