"""The /v1/requests resource."""
