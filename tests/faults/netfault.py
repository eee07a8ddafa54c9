"""Network faults below HTTP: a TCP forwarder that can be taken down and can cut a request in half.

:class:`TcpSwitch` listens on a port of 127.0.0.1 and forwards every connection to a target port.
``down()`` closes the listening socket and resets every open connection, so clients get *connection
refused*, as from a server that is down; ``up()`` listens on the same port again. With :attr:`cut` set
to ``(marker, n)``, a connection whose client sends ``marker`` (say ``b"POST /repo.git/git-receive-pack"``)
is reset after the request's headers and ``n`` bytes of its body have reached the target: the server
gets half a request, as when the network fails in the middle of a push.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpSwitch:
    """See the module docstring. ``cuts`` counts the connections cut so far."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut: tuple[bytes, int] | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.up()

    def up(self) -> None:
        """Listen (again) on :attr:`port`."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-switch")
        self._thread.start()

    def down(self) -> None:
        """Stop listening and reset every open connection: new connections are refused."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def close(self) -> None:
        """Stop everything."""
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if self._listener is not listener:
                    return
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Forward both ways until either side closes; apply :attr:`cut` to what the client sends."""
        seen = b""
        seen_from = 0
        sent = 0
        limit: int | None = None
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [], 60)
                if not ready:
                    return
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    if limit is None and self.cut is not None:
                        if not seen:
                            seen_from = sent
                        seen += data
                        point = self._cut_point(seen)
                        limit = None if point is None else seen_from + point
                    if limit is not None and sent + len(data) >= limit:
                        server.sendall(data[: max(0, limit - sent)])
                        self.cuts += 1
                        return
                    server.sendall(data)
                    sent += len(data)
        except OSError:
            return
        finally:
            _reset(client)
            _reset(server)
            with self._lock:
                self._open.discard(client)
                self._open.discard(server)

    def _cut_point(self, seen: bytes) -> int | None:
        assert self.cut is not None
        marker, body_bytes = self.cut
        start = seen.find(marker)
        if start < 0:
            return None
        end = seen.find(b"\r\n\r\n", start)
        return None if end < 0 else end + 4 + body_bytes


@contextlib.contextmanager
def tcp_switch(target_port: int) -> Iterator[TcpSwitch]:
    """A :class:`TcpSwitch` for the length of a ``with`` block."""
    switch = TcpSwitch(target_port)
    try:
        yield switch
    finally:
        switch.close()
