"""The local stack for real: SeaweedFS + an MLflow server, started once for this module."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lusynth.storage.s3 import StorageError, client, download_dir, upload_dir
from lusynth_dev import stack
from lusynth_dev.ports import port_open
from lusynth_dev.processes import process_alive
from lusynth_dev.servers import BUCKETS, StackError

pytestmark = pytest.mark.slow


def _listening_addresses(pid: int) -> set[str]:
    """'ip:port' of every TCP socket in LISTEN state owned by the process group led by ``pid``."""
    pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    inodes: set[str] = set()
    for p in pids:
        try:
            if os.getpgid(int(p)) != pid:
                continue
            for fd in Path(f"/proc/{p}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                hexip, hexport = cols[1].split(":")
                ip = ".".join(str(b) for b in reversed(bytes.fromhex(hexip))) if len(hexip) == 8 else hexip
                out.add(f"{ip}:{int(hexport, 16)}")
    return out


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    d = tmp_path_factory.mktemp("stack")
    t0 = time.monotonic()
    info = stack.up(d, timeout=90)
    info["seconds_to_up"] = time.monotonic() - t0
    try:
        yield info
    finally:
        stack.down(d)


@pytest.fixture
def stack_environment(running: dict, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = stack.stack_env(running["dir"])
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_up_serves_on_loopback_only(running: dict) -> None:
    assert running["already_running"] is False
    with urllib.request.urlopen(running["mlflow"]["uri"] + "/health", timeout=5) as resp:
        assert resp.status == 200
    st = stack.status(running["dir"])
    assert st["up"] and st["services"]["s3"]["up"] and st["services"]["mlflow"]["up"]
    for service in ("s3", "mlflow"):
        addrs = _listening_addresses(running[service]["pid"])
        assert addrs, f"{service} listens nowhere?"
        assert all(a.startswith("127.0.0.1:") for a in addrs), f"{service} listens beyond loopback: {addrs}"
    assert f"127.0.0.1:{running['s3']['port']}" in _listening_addresses(running["s3"]["pid"])
    # a second `up` finds the running stack instead of starting another
    again = stack.up(running["dir"])
    assert again["already_running"] is True and again["s3"]["pid"] == running["s3"]["pid"]


def test_buckets_exist_and_secret_stays_in_the_credentials_file(running: dict, stack_environment: dict) -> None:
    names = {b["Name"] for b in client().list_buckets()["Buckets"]}
    assert set(BUCKETS) <= names
    cred_file = Path(running["credentials_file"])
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    secret = stack_environment["AWS_SECRET_ACCESS_KEY"]
    assert secret in cred_file.read_text()
    assert secret not in (Path(running["dir"]) / "stack.json").read_text()
    assert secret not in repr(stack.load_or_create_credentials(running["dir"]))


def test_mlflow_artifacts_land_in_seaweedfs(running: dict, stack_environment: dict, tmp_path: Path) -> None:
    from lusynth.tracking import stage_run

    with stage_run("stack-smoke", local_dir=tmp_path, experiment="stack-test") as run:
        run.log_metrics({"auc": 0.75})
        run.log_text("artifact through the MLflow server\n", "notes/hello.txt")
        run_id = run.run_id
    keys = [o["Key"] for o in client().list_objects_v2(Bucket="lusynth-mlflow", Prefix="artifacts/").get("Contents", [])]
    hits = [k for k in keys if k.endswith("notes/hello.txt") and run_id in k]
    assert hits, f"artifact not in s3://lusynth-mlflow/artifacts: {keys}"
    body = client().get_object(Bucket="lusynth-mlflow", Key=hits[0])["Body"].read()
    assert body == b"artifact through the MLflow server\n"
    # and the run is read back from the server's SQLite backend
    from mlflow.tracking import MlflowClient

    got = MlflowClient(stack_environment["MLFLOW_TRACKING_URI"]).get_run(run_id)
    assert got.data.metrics["auc"] == 0.75 and got.info.status == "FINISHED"


def test_directory_round_trip_on_seaweedfs(stack_environment: dict, tmp_path: Path) -> None:
    src = tmp_path / "report"
    (src / "plots").mkdir(parents=True)
    (src / "report.json").write_text('{"ok": true}\n')
    (src / "plots" / "roc.png").write_bytes(os.urandom(50_000))
    summary = upload_dir(src, "s3://lusynth-pipelines/reports/r1")
    assert summary["server_checksums"] is True  # SeaweedFS verifies the SHA-256 of each PUT
    download_dir("s3://lusynth-pipelines/reports/r1", tmp_path / "back")
    for rel in ("report.json", "plots/roc.png"):
        assert (tmp_path / "back" / rel).read_bytes() == (src / rel).read_bytes()


def test_wrong_credentials_name_the_endpoint_not_the_secret(
    running: dict, stack_environment: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    real_secret = stack_environment["AWS_SECRET_ACCESS_KEY"]
    wrong = "wrong-secret-" + real_secret[::-1][:12]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("x")
    with pytest.raises(StorageError) as err:
        upload_dir(tmp_path / "d", "s3://lusynth-data/creds-test")
    msg = str(err.value)
    assert running["s3"]["endpoint"] in msg and "creds-test" in msg
    assert "SignatureDoesNotMatch" in msg and "check the credentials" in msg
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
    with pytest.raises(StorageError, match="InvalidAccessKeyId.*check the credentials") as err2:
        download_dir("s3://lusynth-pipelines/reports/r1", tmp_path / "x")
    for text in (msg, str(err2.value), caplog.text):
        assert wrong not in text and real_secret not in text


def test_stack_up_reports_a_taken_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        with pytest.raises(StackError, match=f"port 127.0.0.1:{taken} is taken.*--s3-port"):
            stack.up(tmp_path / "st", s3_port=taken)
    assert stack.status(tmp_path / "st")["up"] is False


def test_cli_status_and_env(running: dict, capsys: pytest.CaptureFixture[str]) -> None:
    import lusynth.cli.stack  # noqa: F401 - registers `stack` on the app
    from lusynth.cli import main

    assert main(["stack", "status", "--dir", running["dir"]]) == 0
    out = capsys.readouterr().out
    assert "s3: up" in out and "mlflow: up" in out and running["mlflow"]["uri"] in out
    assert main(["stack", "env", "--dir", running["dir"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    exports = dict(line[len("export ") :].split("=", 1) for line in lines if line.startswith("export "))
    assert exports["MLFLOW_TRACKING_URI"] == running["mlflow"]["uri"]
    assert exports["MLFLOW_S3_ENDPOINT_URL"] == exports["LUSYNTH_S3_ENDPOINT_URL"] == running["s3"]["endpoint"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(exports)
    assert any("dvc remote add" in line and "s3://lusynth-data/dvc" in line for line in lines)
    assert any(f"endpointurl {running['s3']['endpoint']}" in line for line in lines)
    assert json.loads((Path(running["dir"]) / "stack.json").read_text())["s3"]["port"] == running["s3"]["port"]


def test_env_dvc_points_the_repository_remote_at_the_stack(running: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`lusynth stack env --dvc` writes the endpoint (never the secret) into .dvc/config.local of a
    repository whose committed .dvc/config names the `lusynth` remote, as this repository's does."""
    import shutil
    import subprocess
    import sys

    import lusynth.cli.stack  # noqa: F401 - registers `stack` on the app
    from lusynth.cli import main

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    shutil.copy(Path(__file__).resolve().parents[2] / ".dvc" / "config", repo / ".dvc" / "config")
    assert main(["stack", "env", "--dir", running["dir"], "--dvc", "--repo", str(repo)]) == 0
    assert str(repo / ".dvc" / "config.local") in capsys.readouterr().out
    local = (repo / ".dvc" / "config.local").read_text()
    assert f"endpointurl = {running['s3']['endpoint']}" in local and 'remote "lusynth"' in local
    secret = stack.load_or_create_credentials(Path(running["dir"])).secret_access_key
    assert secret not in local and secret not in (repo / ".dvc" / "config").read_text()
    listed = subprocess.run([sys.executable, "-m", "dvc", "remote", "list"], cwd=repo, check=True, capture_output=True, text=True).stdout
    assert "lusynth\ts3://lusynth-data/dvc" in listed or "lusynth" in listed.split()
    # DVC reaches the stack's bucket with the exported credentials: a push of nothing succeeds
    env = dict(os.environ, **stack.stack_env(running["dir"]))
    subprocess.run([sys.executable, "-m", "dvc", "push", "-q"], cwd=repo, check=True, env=env)


def test_down_stops_everything(running: dict) -> None:
    """Runs last in this module: the fixture's own `down` then finds nothing to stop."""
    from typer.testing import CliRunner

    import lusynth.cli.stack  # noqa: F401
    from lusynth.cli import app

    t0 = time.monotonic()
    was = stack.down(running["dir"])
    took = time.monotonic() - t0
    assert was == {"s3": True, "mlflow": True}
    assert not process_alive(running["s3"]["pid"]) and not process_alive(running["mlflow"]["pid"])
    assert not port_open(running["s3"]["port"]) and not port_open(running["mlflow"]["port"])
    assert not list(Path(running["dir"]).glob("*.pid"))
    assert stack.status(running["dir"])["up"] is False
    result = CliRunner().invoke(app, ["stack", "status", "--dir", running["dir"]])
    assert result.exit_code == 1 and "s3: down" in result.output and "mlflow: down" in result.output
    assert stack.down(running["dir"]) == {"s3": False, "mlflow": False}
    print(f"stack up {running['seconds_to_up']:.1f} s, down {took:.1f} s")
