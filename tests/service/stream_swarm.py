"""Many open event streams against a live API, read by one thread (tests and bench).

Each stream is a raw socket that sent ``GET /jobs/<id>/events``; a selector
thread drains them all, so that no server send ever waits on this client, and
keeps what each received: its status line and how many events of each kind.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.service.processes import wait_for


@dataclass(eq=False)
class Stream:
    sock: socket.socket
    head: bytes = b""
    received: int = 0
    epochs_events: int = 0
    status_events: int = 0
    closed: bool = False
    # the tail of the last chunk, so that a marker cut in two is still counted
    _tail: bytes = field(default=b"", repr=False)

    @property
    def status(self) -> int | None:
        """The HTTP status once the status line has arrived."""
        line, sep, _ = self.head.partition(b"\r\n")
        return int(line.split()[1]) if sep else None

    def take(self, data: bytes) -> None:
        self.received += len(data)
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]
        window = self._tail + data
        self.epochs_events += window.count(b"event: epochs") - self._tail.count(b"event: epochs")
        self.status_events += window.count(b"event: status") - self._tail.count(b"event: status")
        self._tail = window[-20:]


def request_bytes(path: str, key: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Swarm:
    """Open streams, read in the background until :meth:`close`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: list[Stream] = []
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def open(self, path: str, key: str, headers: dict[str, str] | None = None) -> Stream:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(request_bytes(path, key, headers))
        sock.setblocking(False)
        stream = Stream(sock)
        with self._lock:
            self.streams.append(stream)
            self._selector.register(sock, selectors.EVENT_READ, stream)
        return stream

    def _drain(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ready = self._selector.select(0) if self._selector.get_map() else []
            if not ready:
                time.sleep(0.01)
                continue
            for selected, _ in ready:
                stream: Stream = selected.data
                try:
                    data = stream.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    stream.take(data)
                else:
                    stream.closed = True
                    with self._lock:
                        self._selector.unregister(stream.sock)

    def wait_answered(self, streams: Iterable[Stream], timeout: float) -> None:
        pending = list(streams)
        wait_for(lambda: all(s.status is not None for s in pending), timeout, 0.05, "answers")

    def close(self, streams: Iterable[Stream] | None = None) -> None:
        chosen = list(self.streams if streams is None else streams)
        with self._lock:
            for stream in chosen:
                if not stream.closed:
                    stream.closed = True
                    self._selector.unregister(stream.sock)
                stream.sock.close()
        if streams is None:
            self._stop.set()
            self._thread.join(5)


def timed(send: Callable[[], Any], count: int) -> list[float]:
    """Milliseconds of ``count`` calls of ``send``, one after the other."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        send()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def summary(times: list[float]) -> str:
    median = statistics.median(times)
    return f"median {median:.1f} ms, p99 {p99(times):.1f} ms, max {max(times):.1f} ms"


class Client:
    """One keep-alive connection: what a client polling the API holds."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.key = key

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a connection idle for its keep-alive time (2 s): open another.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def slow_job() -> dict[str, Any]:
    """A job of about a few milliseconds an epoch: it runs for the whole test."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(200, 8)).round(3)
    targets = (inputs[:, :1] > 0).astype(float)
    return {
        "dataset": {"inputs": inputs.tolist(), "targets": targets.tolist()},
        "network": {"input_dim": 8, "layers": [{"units": 16, "activation": "tanh"},
                                              {"units": 1, "activation": "sigmoid"}]},
        "training": {"epochs": 1_000_000, "batch_size": 1},
    }  # fmt: skip
