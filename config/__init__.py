"""Settings: the one place that reads the environment."""
from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
