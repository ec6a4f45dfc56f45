"""The app's request class: a body sent without Content-Length (chunked) is held to
MAX_CONTENT_LENGTH as one with it is, 413 beyond, instead of being cut at the limit."""
from __future__ import annotations

from typing import IO

import flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class CappedStream(LimitedStream):
    """werkzeug's stream for a chunked body stops reading at the limit and returns what it has
    read, so a body over the limit reached the view cut short (and was stored when the cut
    prefix parsed). This one reads one byte past the limit and refuses the body if it is there."""

    def __init__(self, stream: IO[bytes], limit: int):
        super().__init__(stream, limit + 1, is_max=True)

    def readinto(self, buffer) -> int | None:  # type: ignore[override]
        size = super().readinto(buffer)
        if self._pos >= self.limit:
            raise RequestEntityTooLarge()
        return size


class Request(flask.Request):
    @cached_property
    def stream(self) -> IO[bytes]:
        """The body's stream, at most MAX_CONTENT_LENGTH bytes whether or not it is chunked."""
        if self.shallow:
            raise RuntimeError("This request was created with 'shallow=True': its body cannot be read.")
        limit = self.max_content_length
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            return CappedStream(self.environ["wsgi.input"], limit)
        return get_input_stream(self.environ, max_content_length=limit)
