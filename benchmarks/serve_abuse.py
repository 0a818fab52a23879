"""``lusynth serve`` under abuse: server memory with many slow uploads, time to cut a stalled body,
``/healthz`` latency while batches are predicted.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_abuse.py [--clients 100]

Starts ``lusynth serve`` (the CLI, default limits except ``--body-timeout-s``, see
``BODY_TIMEOUT_S``) on 127.0.0.1 with a private TMPDIR and a small random classifier, then:

1. ``clients`` clients connect 20 ms apart, each declares an 8,000,000-byte upload, sends all but
   100 KB of it and stalls; the server's RSS (psutil, the server process) is sampled before,
   during (peak) and after they leave. Those within ``max_connections`` are held until the body
   timeout cuts them (408; ``slow_body_cut_s`` is the longest time from a client's headers to
   its 408), the others get 503 at once.
2. 4 clients post batches of 64 PNG frames for ``LOAD_S`` seconds while another polls
   ``/healthz`` every 10 ms: ``healthz_p99_ms``.
3. SIGTERM; ``temp_dirs_left`` counts the ``lusynth-serve-*`` directories left in the TMPDIR.

Results go to benchmarks/results/serve_abuse.json (``out_json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "serve_abuse.json"
BODY_TIMEOUT_S = 10.0  # instead of the 60 s default, so that a run takes about a minute
DECLARED, SENT = 8_000_000, 7_900_000  # an almost complete upload just under the 8 MiB default
LOAD_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _png(frame: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096)
    except TimeoutError:
        return b"<timeout>"
    except OSError:
        return b""


def _start(model: Path, port: int, tmpdir: Path, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", "import sys; from lusynth.cli import main; sys.exit(main())", "serve", "--model", str(model),
           "--port", str(port), "--body-timeout-s", str(BODY_TIMEOUT_S)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"lusynth serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("lusynth serve did not answer within 180 s")
        time.sleep(0.2)


def _slow_clients(port: int, clients: int, rss: Any) -> dict[str, Any]:
    """Phase 1: ``clients`` almost complete uploads that stall, all at once; RSS peak, answers, cut times."""
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: {DECLARED}\r\n\r\n").encode()
    chunk = b"\x89PNG" + b"\x00" * ((1 << 16) - 4)
    peak = [rss()]
    stop = threading.Event()
    answers: list[tuple[str, float]] = []

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.02)

    def client(s: socket.socket, t0: float) -> None:
        s.settimeout(BODY_TIMEOUT_S + 60)
        try:
            for _ in range(SENT // len(chunk)):
                s.sendall(chunk)
        except OSError:  # refused (503, closed): the server stopped reading
            pass
        got = _answer(s, BODY_TIMEOUT_S + 60)
        answers.append((got[:12].decode(errors="replace") or "closed", time.monotonic() - t0))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    socks, threads = [], []
    try:
        for _ in range(clients):  # connected one after the other, 20 ms apart, then all stall together
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
            s.sendall(head)
            t = threading.Thread(target=client, args=(s, time.monotonic()))
            t.start()
            threads.append(t)
            time.sleep(0.02)
        for t in threads:
            t.join()
    finally:
        stop.set()
        sampler.join()
        for s in socks:
            s.close()
    held = [dt for status, dt in answers if status == "HTTP/1.1 408"]
    return {"peak": peak[0], "held": len(held), "refused_503": sum(status == "HTTP/1.1 503" for status, _ in answers),
            "other": sorted({status for status, _ in answers} - {"HTTP/1.1 408", "HTTP/1.1 503"}),
            "cut_s": max(held) if held else 0.0}


def _healthz_under_load(port: int) -> dict[str, Any]:
    """Phase 2: /healthz latencies while 4 clients post batches of 64 frames."""
    import httpx

    url = f"http://127.0.0.1:{port}"
    rng = np.random.default_rng(0)
    files = [("files", (f"{i}.png", _png(rng.integers(0, 256, (64, 64), dtype=np.uint8)), "image/png")) for i in range(64)]
    stop = time.monotonic() + LOAD_S
    done, errors = [0], [0]

    def load() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while time.monotonic() < stop:
                r = c.post("/predict", files=files)
                done[0] += 1
                errors[0] += r.status_code != 200

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    lat = []
    with httpx.Client(base_url=url, timeout=30) as c:
        time.sleep(0.5)
        while time.monotonic() < stop:
            t = time.perf_counter()
            c.get("/healthz")
            lat.append(time.perf_counter() - t)
            time.sleep(0.01)
    for w in workers:
        w.join()
    return {"healthz_p50_ms": float(np.percentile(lat, 50) * 1e3), "healthz_p99_ms": float(np.percentile(lat, 99) * 1e3),
            "healthz_checks": len(lat), "batches_predicted": done[0], "batch_errors": errors[0]}


def run(*, clients: int = 100, out_json: str | None = None) -> dict:
    """Run the three phases against a fresh ``lusynth serve``; the numbers (also written to ``out_json``)."""
    import dataclasses

    import httpx
    import psutil

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_inference import _random_classifier

    from lusynth.export.onnx_export import export_classifier
    from lusynth.serve import ServeLimits

    with tempfile.TemporaryDirectory(prefix="serve-abuse-") as tmp_s:
        tmp = Path(tmp_s)
        model = export_classifier(_random_classifier(tmp / "clf", 64, 3), tmp / "clf.onnx", prefer_dynamo=False).path
        server_tmp = tmp / "tmpdir"
        server_tmp.mkdir()
        port = _free_port()
        proc = _start(model, port, server_tmp, tmp / "serve.log")
        try:
            ps = psutil.Process(proc.pid)

            def rss() -> float:
                return ps.memory_info().rss / 2**20

            frame = _png(np.zeros((64, 64), np.uint8))
            for _ in range(3):  # warm: first requests allocate the request path once
                httpx.post(f"http://127.0.0.1:{port}/predict", content=frame, headers={"content-type": "image/png"}, timeout=60)
            before = rss()
            slow = _slow_clients(port, clients, rss)
            time.sleep(2.0)
            after = rss()
            load = _healthz_under_load(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log = (tmp / "serve.log").read_text(errors="replace")
        left = len(list(server_tmp.glob("lusynth-serve-*")))
    res = {
        "clients": clients, "server": "lusynth serve (CLI), one worker", "limits": dataclasses.asdict(ServeLimits(body_timeout_s=BODY_TIMEOUT_S)),
        "declared_bytes": DECLARED, "sent_bytes": SENT,
        "rss_before_mb": round(before, 1), "rss_peak_mb": round(slow["peak"], 1), "rss_after_mb": round(after, 1),
        "slow_clients": clients, "slow_clients_held": slow["held"], "slow_clients_refused_503": slow["refused_503"],
        "slow_body_cut_s": round(slow["cut_s"], 2), "slow_clients_other_answers": slow["other"],
        **{k: round(v, 1) if isinstance(v, float) else v for k, v in load.items()},
        "tracebacks_in_log": log.count("Traceback"), "temp_dirs_left": left, "exit_code": proc.returncode,
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
    }
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args()
    print(json.dumps(run(clients=a.clients, out_json=a.out), indent=2, sort_keys=True))
