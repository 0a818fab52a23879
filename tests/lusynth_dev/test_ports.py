"""Port choice of the local servers: ports stay out of the kernel's ephemeral range, and a server
whose port is taken between the choice and its bind is started again on new ports (with real
SeaweedFS and MLflow servers; the first port handed out is held by a bound socket)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lusynth_dev import logs, ports, servers
from lusynth_dev.processes import stop_process


def test_free_ports_are_bindable_below_the_ephemeral_range_and_skip_exclusions() -> None:
    low = ports._ephemeral_low()
    chosen: set[int] = set()
    for _ in range(40):
        port = ports.free_port(exclude=chosen)
        assert port not in chosen
        assert port < low, f"{port} is in the ephemeral range (from {low}) where outgoing connections take ports"
        with socket.socket() as s:
            s.bind((ports.HOST, port))  # free indeed
        chosen.add(port)


@pytest.fixture
def held_first_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The first ``free_port()`` answer is a port another socket has bound (not listening, so a
    probe finds nothing there); later answers are real."""
    holder = socket.socket()
    holder.bind((ports.HOST, ports.free_port()))
    held = int(holder.getsockname()[1])
    real: Callable[..., int] = ports.free_port
    calls = {"n": 0}

    def first_taken(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        return held if calls["n"] == 1 else real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ports, "free_port", first_taken)
    try:
        yield held
    finally:
        holder.close()


CREDS = servers.Credentials("PORTTESTKEY", "port-test-secret-0123456789")


@pytest.mark.slow
def test_seaweedfs_starts_again_on_new_ports_when_its_s3_port_is_taken_at_its_check(held_first_port: int, tmp_path: Path) -> None:
    proc, endpoint = servers.start_seaweedfs(tmp_path / "data", CREDS, log_dir=tmp_path / "logs")
    try:
        assert not endpoint.endswith(f":{held_first_port}")
        servers.wait_s3_ready(endpoint, CREDS, proc, timeout=5)
        log = (tmp_path / "logs" / "weed.log").read_text()
        assert f"port {held_first_port} for S3" in log and "is not available" in log
        assert "starting it again on new ports" in log
    finally:
        stop_process(proc.pid)


@pytest.mark.slow
def test_seaweedfs_starts_again_when_its_s3_port_is_taken_after_its_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CI failure: the S3 port was free when ``weed mini`` checked its ports, and another
    process took it in the seconds before the S3 server (started last, once the filer answers)
    bound it: "S3 API Server listener on ...: bind: address already in use", exit 255."""
    real = ports.free_port
    answers: list[int] = []

    def recording(*args: object, **kwargs: object) -> int:
        answers.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return answers[-1]

    monkeypatch.setattr(ports, "free_port", recording)
    grabbed: list[socket.socket] = []

    def grab_s3_port_once_master_listens() -> None:
        deadline = time.monotonic() + 30
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        s3_port, master_port = answers[0], answers[1]
        while not ports.port_open(master_port, timeout=0.05) and time.monotonic() < deadline:
            time.sleep(0.01)
        sock = socket.socket()
        sock.bind((ports.HOST, s3_port))  # before S3 binds: it starts after the filer answers
        grabbed.append(sock)

    grabber = threading.Thread(target=grab_s3_port_once_master_listens, daemon=True)
    grabber.start()
    proc, endpoint = servers.start_seaweedfs(tmp_path / "data", CREDS, log_dir=tmp_path / "logs")
    try:
        grabber.join(5)
        assert grabbed, "the S3 port was not taken in time; the test did not exercise the late bind failure"
        assert not endpoint.endswith(f":{answers[0]}")
        log = (tmp_path / "logs" / "weed.log").read_text()
        assert f"127.0.0.1:{answers[0]}: bind: address already in use" in log
        assert "starting it again on new ports" in log
        # had it not been retried, the error would lead with the fatal line, not the goroutine dump
        tail = logs.log_tail(tmp_path / "logs" / "weed.log", lines=3)
        assert "S3 API Server listener on" in tail.splitlines()[0], tail
    finally:
        stop_process(proc.pid)
        for sock in grabbed:
            sock.close()


@pytest.mark.slow
def test_seaweedfs_bind_failure_names_the_cause_not_just_a_goroutine_dump(held_first_port: int, tmp_path: Path) -> None:
    with pytest.raises(servers.StackError) as info:
        servers.start_seaweedfs(tmp_path / "data", CREDS, log_dir=tmp_path / "logs", attempts=1)
    msg = str(info.value)
    assert "exited with code" in msg
    assert f"port {held_first_port} for S3" in msg and "is not available" in msg, msg


@pytest.mark.slow
def test_mlflow_starts_again_on_a_new_port_when_its_port_was_taken(held_first_port: int, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    proc, uri = servers.start_mlflow(tmp_path, "http://127.0.0.1:9", CREDS)
    try:
        assert not uri.endswith(f":{held_first_port}")
        log = (tmp_path / "logs" / "mlflow.log").read_text()
        assert "address already in use" in log.lower()
        assert "a port was taken while MLflow started (attempt 1/3)" in log
    finally:
        stop_process(proc.pid)
