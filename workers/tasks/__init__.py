"""Celery tasks: thin wrappers over the core, named explicitly, taking JSON primitives."""
