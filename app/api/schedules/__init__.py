"""The /v1/schedules resource."""
