"""Faults: the S3 server dies mid-upload; the MLflow server is unreachable."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lusynth.storage.s3 import StorageError, TransferOptions, client, download_dir, upload_dir
from lusynth.tracking import TrackingError, check_reachable
from lusynth_dev.ports import free_port
from lusynth_dev.processes import stop_process
from lusynth_dev.servers import Credentials, start_seaweedfs

pytestmark = pytest.mark.slow

# few attempts and short timeouts, so the failure is quick; parts of 5 MiB so big files go multipart
FRAGILE = TransferOptions(
    max_attempts=2, connect_timeout=1.0, read_timeout=3.0, multipart_threshold=5 * 1024 * 1024,
    multipart_chunksize=5 * 1024 * 1024, max_concurrency=2,
)  # fmt: skip


def _dataset(root: Path) -> Path:
    """Many small files and two multipart ones: ~14 MiB in 400 files."""
    rng = __import__("numpy").random.default_rng(1)
    for i in range(398):
        sub = root / f"shard{i % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"frame{i:04d}.bin").write_bytes(rng.integers(0, 256, 8192, dtype="uint8").tobytes())
    for name in ("model_a.onnx", "model_b.onnx"):
        (root / name).write_bytes(rng.integers(0, 256, 6 * 1024 * 1024, dtype="uint8").tobytes())
    return root


def test_s3_server_killed_mid_upload_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials("FAULTTESTKEY", "fault-test-secret-9f8e7d")
    data = tmp_path / "weed-data"
    proc, endpoint = start_seaweedfs(data, creds)
    port = int(endpoint.rsplit(":", 1)[1])
    monkeypatch.setenv("LUSYNTH_S3_ENDPOINT_URL", endpoint)
    for k, v in creds.env().items():
        monkeypatch.setenv(k, v)
    try:
        client().create_bucket(Bucket="faults")
        src = _dataset(tmp_path / "src")
        watcher = client(max_attempts=1)
        killed = threading.Event()
        kill_time: list[float] = []

        def kill_after_first_objects() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                n = watcher.list_objects_v2(Bucket="faults", Prefix="run/").get("KeyCount", 0)
                if n >= 20:
                    os.killpg(proc.pid, signal.SIGKILL)  # a crash, not a graceful stop
                    kill_time.append(time.monotonic())
                    killed.set()
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_after_first_objects, daemon=True)
        killer.start()
        t0 = time.monotonic()
        with pytest.raises(StorageError) as err:
            upload_dir(src, "s3://faults/run", options=FRAGILE)
        failed_at = time.monotonic()
        killer.join(5)
        assert killed.is_set()
        took = failed_at - kill_time[0]  # from the crash to the clear error
        msg = str(err.value)
        assert endpoint in msg and "s3://faults/run/" in msg and "after 2 attempts" in msg, msg
        assert "check that the S3 server is running" in msg and creds.secret_access_key not in msg
        assert took < 20, f"the upload took {took:.1f} s to give up after the crash"
        proc.wait(10)

        # restart on the same data: the objects written before the crash are there, the manifest is not
        proc, endpoint2 = start_seaweedfs(data, creds, s3_port=port)
        assert endpoint2 == endpoint
        left = client().list_objects_v2(Bucket="faults", Prefix="run/").get("KeyCount", 0)
        assert left >= 20  # SeaweedFS is persistent: the partial upload's objects survived
        with pytest.raises(StorageError, match="incomplete upload: no manifest.*re-run the upload"):
            download_dir("s3://faults/run", tmp_path / "reader")
        assert not (tmp_path / "reader").exists()

        # a rerun completes and reads back byte for byte
        summary = upload_dir(src, "s3://faults/run", options=FRAGILE)
        assert summary["files"] == 400
        download_dir("s3://faults/run", tmp_path / "reader")
        for rel in ("model_b.onnx", "shard5/frame0397.bin"):
            assert (tmp_path / "reader" / rel).read_bytes() == (src / rel).read_bytes()
        print(f"crash after {kill_time[0] - t0:.1f} s of upload; error {took:.1f} s later; {left} objects left behind")
    finally:
        stop_process(proc.pid, timeout=10)


def test_mlflow_unreachable_fails_fast_naming_the_uri() -> None:
    port = free_port()  # nothing listens here
    uri = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}.*not reachable"):
        check_reachable(uri)
    assert time.monotonic() - t0 < 5
