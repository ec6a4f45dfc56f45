"""A TCP proxy on 127.0.0.1 whose connections can be frozen: they stay open but nothing passes any
more, in either direction, as when a host or a network path dies without closing anything."""
from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def freeze(self) -> None:
        """The connections open now stop passing data; their sockets stay open. New ones work."""
        with self._lock:
            for _, _, frozen in self._connections:
                frozen.set()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        with self._lock:
            for client, upstream, _ in self._connections:
                client.close()
                upstream.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            frozen = threading.Event()
            with self._lock:
                self._connections.append((client, upstream, frozen))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target, frozen), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, frozen: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                if not frozen.is_set():
                    target.sendall(data)
            if not frozen.is_set():
                target.close()  # a side that closed closes the other (a frozen one never tells)
        except OSError:
            pass
