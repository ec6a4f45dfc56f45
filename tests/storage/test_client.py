"""The Redis client: connections handed out by the pool never carry a stale reply, and one the
server closed is replaced before it is used; commands are packed by hiredis as redis-py would."""
from __future__ import annotations

import select
import socket
import time

import pytest
import redis

from app.storage import client as client_module
from app.storage.client import TcpConnection, connect
from tests.support.waiting import wait_until


def test_a_connection_returned_with_an_unread_reply_is_replaced(redis_url):
    client = connect(redis_url, max_connections=1)
    assert client.connection_pool.connection_class is TcpConnection
    client.set("k", "v")
    conn = client.connection_pool.get_connection()
    conn.send_command("PING")  # its reply is left unread when the connection goes back
    assert select.select([conn._sock], [], [], 5)[0]  # the reply has arrived
    client.connection_pool.release(conn)
    assert client.get("k") == "v"  # not the stale PONG
    client.close()


def test_the_readiness_check_sees_waiting_bytes(redis_url):
    client = connect(redis_url)
    conn = client.connection_pool.get_connection()
    assert conn.can_read() is False
    conn.send_command("PING")
    assert select.select([conn._sock], [], [], 5)[0]
    assert conn.can_read() is True  # on the socket
    conn.send_command("PING")
    both = len(b"+PONG\r\n") * 2
    wait_until(lambda: len(conn._sock.recv(both, socket.MSG_PEEK)) == both, 5, 0.01)  # both replies arrived
    assert conn.read_response() == "PONG"
    assert conn.can_read() is True  # the second, in the parser's buffer or still on the socket
    conn.disconnect()
    client.close()


def test_a_connection_the_server_closed_is_replaced_before_it_is_used(redis_url):
    client = connect(redis_url, max_connections=1)
    client.set("k", "v")
    admin = redis.Redis.from_url(redis_url)
    assert admin.client_kill_filter(_id=client.client_id()) == 1  # as a Redis restart or idle timeout would
    assert client.get("k") == "v"
    admin.close()
    client.close()


def test_the_readiness_check_never_waits_whatever_the_default_socket_timeout(redis_url):
    """A Celery worker stopping sets a default socket timeout: the check must not wait for it,
    nor take the idle connection for a broken one (its commands then failed, "Connection not ready")."""
    client = connect(redis_url)
    client.ping()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(2.0)
    try:
        conn = client.connection_pool.get_connection()
        started = time.monotonic()
        assert conn.can_read() is False
        assert time.monotonic() - started < 0.5
        assert conn._sock.gettimeout() == 5.0  # the connection's own timeout is untouched
        client.connection_pool.release(conn)
        assert client.ping() is True
    finally:
        socket.setdefaulttimeout(previous)
        client.close()


def test_commands_are_packed_by_hiredis_with_redis_pys_meaning(redis_url):
    """str (UTF-8), int, float and bytes straight to hiredis; the rest as redis-py packs or refuses it."""
    client = connect(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._command_packer, client_module._HiredisPacker)
    finally:
        client.connection_pool.release(connection)
    values = {"text": "café ✓", "int": 12345678901234567890, "float": 0.1, "bytes": b"\xff\x00",
              "bytearray": bytearray(b"ab"), "memoryview": memoryview(b"cd")}
    for name, value in values.items():
        client.set(name, value)
    raw = redis.Redis.from_url(redis_url)
    assert raw.mget(list(values)) == ["café ✓".encode(), b"12345678901234567890", b"0.1", b"\xff\x00", b"ab", b"cd"]
    raw.close()
    client.client_setname("packed")  # a command name with a space
    assert client.client_getname() == "packed"
    with pytest.raises(redis.DataError):
        client.set("bool", True)
    with pytest.raises(UnicodeEncodeError):
        client.set("surrogate", "\udcff")
    with pytest.raises(ValueError):  # too long to print: hiredis given it would crash the process
        client.set("big", 10 ** 5000)
    client.close()
