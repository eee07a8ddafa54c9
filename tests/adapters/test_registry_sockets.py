"""The HTTP transport under the registry stack: idle connections the server closed are still noticed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpcore
import httpx
import pytest

from image_updater.adapters.registry.transport import _ReadableStream, _SocketOnce, http_transport

pytestmark = pytest.mark.anyio



class _Server:
    """A loopback HTTP/1.1 server that answers one request per connection, then closes it."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # keep-alive, as far as the client knows
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.closed.set()


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    server = _Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    transport = http_transport()
    async with listener, httpx.AsyncClient(transport=transport) as client:
        first = await client.get(f"http://127.0.0.1:{port}/v2/")
        await server.closed.wait()
        server.closed.clear()
        second = await client.get(f"http://127.0.0.1:{port}/v2/")
    assert (first.text, second.text) == ("ok", "ok")
    assert server.connections == 2
    assert isinstance(transport._pool._network_backend, _SocketOnce)  # the httpx in use takes it


class _Inner(httpcore.AsyncNetworkStream):
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.asked: list[str] = []

    def get_extra_info(self, info: str) -> Any:
        self.asked.append(info)
        return self.sock if info == "socket" else "inner answer"


def test_readable_is_answered_from_the_socket_found_once() -> None:
    ours, theirs = socket.socketpair()
    inner = _Inner(ours)
    stream = _ReadableStream(inner)
    with theirs:
        assert stream.get_extra_info("is_readable") is False
        theirs.sendall(b"x")
        assert stream.get_extra_info("is_readable") is True
    ours.close()
    assert stream.get_extra_info("is_readable") is True  # closed: the next read would say end of file
    assert inner.asked == ["socket"]
    assert stream.get_extra_info("server_addr") == "inner answer"


def test_a_stream_without_a_socket_asks_its_inner_stream() -> None:
    inner = _Inner(None)
    assert _ReadableStream(inner).get_extra_info("is_readable") == "inner answer"
    assert inner.asked == ["socket", "is_readable"]
