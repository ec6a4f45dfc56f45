"""gunicorn settings for the web server (`gunicorn -c config/gunicorn.py "app:create_app()"`).

gevent workers on gevent's HTTP server (`config/web_worker.py`): every long poll (a queue receive,
a response wait) is a parked greenlet, not a thread, so hundreds of waiting clients cost little
while other requests keep being answered.
"""
from config.settings import load_settings

_settings = load_settings()

bind = f"0.0.0.0:{_settings.http_port}"
workers = _settings.web_concurrency
worker_class = "config.web_worker.Worker"
worker_connections = 1000
# Above the longest long poll (30 s response wait), so no waiting client is cut off.
timeout = 60
# Above the longest long poll too, so a graceful stop lets waiting clients get their answer.
graceful_timeout = 35
keepalive = 5  # seconds an idle connection stays open
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
