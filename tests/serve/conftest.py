"""Real uvicorn servers on 127.0.0.1 (ephemeral ports): in a thread, or ``lusynth serve`` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` over real HTTP with its limits (``app.state.limits``); yield its base URL; stop it afterwards."""
    import uvicorn

    from lusynth.serve import server_config

    server = uvicorn.Server(server_config(app, app.state.limits, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not (server.started and server.servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 20 s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """A ``lusynth serve`` process; its stderr (uvicorn's and the service's log) goes to ``log``."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


# the library's serve(), which `lusynth serve` calls, without the CLI's imports (torch, sklearn: ~15 s here)
_RUNNER = ("import json, sys; from lusynth.serve import ServeLimits, serve; "
           "serve(sys.argv[1], port=int(sys.argv[2]), limits=ServeLimits(**json.loads(sys.argv[3])))")


@contextmanager
def serve_process(model: Path | str, *, tmpdir: Path, log: Path, timeout: float = 60, **limits: Any) -> Iterator[ServeProcess]:
    """Run :func:`lusynth.serve.serve` (``limits``: ServeLimits fields) in a process with
    ``TMPDIR=tmpdir`` on a free port; stop it with SIGTERM."""
    import json

    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "LUSYNTH_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", _RUNNER, str(model), str(port), json.dumps(limits)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"lusynth serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"lusynth serve did not answer within {timeout} s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield ServeProcess(proc, url, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def png(frame: Any, fmt: str = "PNG") -> bytes:
    """``frame`` (a uint8 array) encoded as PNG/JPEG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1-bit PNG of ``width x height`` black pixels: ~110 KB on disk, 900 Mpx once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def classifier_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(root, model.onnx): a tiny real classifier trained on a phantom store and exported."""
    from lusynth.export.onnx_export import export_classifier
    from tests.export import real_store, train_tiny_classifier

    root = tmp_path_factory.mktemp("serve")
    real = real_store(root)
    train_tiny_classifier(real, root / "clf")
    return root, export_classifier(root / "clf", root / "clf.onnx", prefer_dynamo=False).path
