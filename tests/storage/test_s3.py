"""Directory upload/download through S3 against moto's in-memory server (unit behaviour)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lusynth.errors import InputError
from lusynth.storage.s3 import (
    MANIFEST_NAME,
    StorageError,
    TransferOptions,
    client,
    download_dir,
    download_prefix,
    file_sha256,
    read_manifest,
    upload_dir,
)

SECRET = "moto-secret-Zq9xW2vK7pL4"
SMALL_PARTS = TransferOptions(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_attempts=2)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)  # its default binds 0.0.0.0
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    monkeypatch.setenv("LUSYNTH_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = "t-" + request.node.name.replace("_", "-")[:50].lower()
    client().create_bucket(Bucket=name)
    return name


def _make_dir(root: Path, *, big: bool = False) -> Path:
    """A frame-store-like directory: a binary array, a manifest CSV, a nested report."""
    rng = __import__("numpy").random.default_rng(0)
    (root / "report").mkdir(parents=True)
    (root / "frames.npy").write_bytes(rng.integers(0, 256, 300_000, dtype="uint8").tobytes())
    (root / "manifest.csv").write_text("frame_id,label\n0,a\n1,b\n")
    (root / "report" / "metrics.json").write_text(json.dumps({"auc": 0.9}))
    (root / "empty.txt").write_bytes(b"")
    if big:  # crosses the 5 MiB multipart threshold: 2 parts
        (root / "big.bin").write_bytes(rng.integers(0, 256, 7 * 1024 * 1024, dtype="uint8").tobytes())
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_is_byte_identical_and_multipart(bucket: str, tmp_path: Path) -> None:
    src = _make_dir(tmp_path / "src", big=True)
    summary = upload_dir(src, f"s3://{bucket}/stores/a", options=SMALL_PARTS, progress=True)
    assert summary["files"] == 5 and summary["bytes"] == sum(len(b) for b in _tree(src).values())
    manifest = read_manifest(f"s3://{bucket}/stores/a")
    # the SHA-256 computed while streaming equals a fresh read of each file
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {rel: file_sha256(src / rel) for rel in _tree(src)}
    head = client().head_object(Bucket=bucket, Key="stores/a/big.bin")
    assert head["ContentLength"] == 7 * 1024 * 1024 and head["ETag"].strip('"').endswith("-2")  # went up in 2 parts
    manifest = download_dir(f"s3://{bucket}/stores/a/", tmp_path / "dst", options=SMALL_PARTS)
    assert _tree(tmp_path / "dst") == _tree(src)
    assert manifest["digest"] == summary["digest"]


def test_manifest_is_written_last(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _make_dir(tmp_path / "src")
    s3 = client()
    order: list[str] = []
    import lusynth.storage.upload as mod

    real = mod.connect

    def spying(opts: TransferOptions, **kw):  # record the key of every PUT in the order the server gets it
        c, log = real(opts, **kw)
        c.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: order.append(params["Key"]))
        return c, log

    monkeypatch.setattr(mod, "connect", spying)
    upload_dir(src, f"s3://{bucket}/m")
    assert order[-1] == f"m/{MANIFEST_NAME}" and len(order) == 5
    assert s3.get_object(Bucket=bucket, Key=f"m/{MANIFEST_NAME}")["ContentLength"] > 0


def test_missing_manifest_is_refused(bucket: str, tmp_path: Path) -> None:
    s3 = client()
    s3.put_object(Bucket=bucket, Key="half/frames.npy", Body=b"123")  # objects, but no manifest
    with pytest.raises(StorageError, match="incomplete upload: no manifest.*re-run the upload") as err:
        download_dir(f"s3://{bucket}/half", tmp_path / "dst")
    assert "half" in str(err.value) and not (tmp_path / "dst").exists()


def test_checksum_mismatch_is_detected_and_nothing_is_left(bucket: str, tmp_path: Path) -> None:
    src = _make_dir(tmp_path / "src")
    upload_dir(src, f"s3://{bucket}/c")
    # same size, different bytes, behind the manifest's back
    client().put_object(Bucket=bucket, Key="c/manifest.csv", Body=b"frame_id,label\n0,b\n1,a\n")
    with pytest.raises(StorageError, match=r"c/manifest\.csv.*checksum mismatch.*re-run the upload"):
        download_dir(f"s3://{bucket}/c", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()
    assert not list(tmp_path.glob(".tmp-dst-*"))  # the temporary download was removed too


def test_truncated_object_is_detected(bucket: str, tmp_path: Path) -> None:
    upload_dir(_make_dir(tmp_path / "src"), f"s3://{bucket}/t")
    client().put_object(Bucket=bucket, Key="t/frames.npy", Body=b"short")
    with pytest.raises(StorageError, match=r"t/frames\.npy.*5 bytes, the manifest says 300000"):
        download_dir(f"s3://{bucket}/t", tmp_path / "dst")


def test_reupload_replaces_objects_and_removes_stale_ones(bucket: str, tmp_path: Path) -> None:
    src = _make_dir(tmp_path / "src")
    upload_dir(src, f"s3://{bucket}/r")
    client().put_object(Bucket=bucket, Key="r/foreign/leftover.bin", Body=b"x")  # a stale object
    (src / "report" / "metrics.json").unlink()
    (src / "manifest.csv").write_text("frame_id,label\n0,a\n")
    summary = upload_dir(src, f"s3://{bucket}/r")
    assert summary["deleted_stale"] == 2
    keys = sorted(o["Key"] for o in client().list_objects_v2(Bucket=bucket, Prefix="r/")["Contents"])
    assert keys == sorted([f"r/{MANIFEST_NAME}", "r/empty.txt", "r/frames.npy", "r/manifest.csv"])
    download_dir(f"s3://{bucket}/r", tmp_path / "dst")
    assert _tree(tmp_path / "dst") == _tree(src)
    # a download over an existing directory replaces it whole (no file from the old one survives)
    download_dir(f"s3://{bucket}/r", tmp_path / "dst")
    assert _tree(tmp_path / "dst") == _tree(src)


def test_bad_inputs_are_refused(bucket: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        upload_dir(tmp_path / "nope", f"s3://{bucket}/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        upload_dir(tmp_path / "empty", f"s3://{bucket}/x")
    src = _make_dir(tmp_path / "src")
    with pytest.raises(InputError, match="give a prefix"):
        upload_dir(src, f"s3://{bucket}")
    with pytest.raises(InputError, match="not an s3:// URI"):
        upload_dir(src, "/local/path")
    (src / MANIFEST_NAME).write_text("{}")
    with pytest.raises(InputError, match="reserved"):
        upload_dir(src, f"s3://{bucket}/x")
    with pytest.raises(InputError, match="max_attempts"):
        TransferOptions(max_attempts=0)
    with pytest.raises(InputError, match="at least 5 MiB"):
        TransferOptions(multipart_chunksize=1024)


def test_manifest_with_escaping_path_is_refused(bucket: str, tmp_path: Path) -> None:
    evil = {"schema": 1, "files": [{"path": "../outside", "size": 1, "sha256": "0" * 64}]}
    client().put_object(Bucket=bucket, Key=f"e/{MANIFEST_NAME}", Body=json.dumps(evil).encode())
    with pytest.raises(StorageError, match="escapes the prefix"):
        download_dir(f"s3://{bucket}/e", tmp_path / "dst")
    assert not (tmp_path / "outside").exists()


def test_missing_bucket_names_endpoint_and_key(bucket: str, moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs requests at DEBUG: the secret must not be there either
    with pytest.raises(StorageError) as err:
        upload_dir(_make_dir(tmp_path / "src"), "s3://no-such-bucket-here/x", options=SMALL_PARTS)
    msg = str(err.value)
    assert moto_endpoint in msg and "s3://no-such-bucket-here/x/" in msg and "NoSuchBucket" in msg and "bucket name" in msg
    assert SECRET not in msg and SECRET not in caplog.text


def test_server_without_flexible_checksums_falls_back(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server answering NotImplemented to ChecksumAlgorithm still gets the upload (plain PUTs)."""
    from botocore.exceptions import ClientError

    import lusynth.storage.upload as mod

    real = mod.connect

    def strict(opts: TransferOptions, **kw):
        c, log = real(opts, **kw)

        def refuse(params, **_):
            if params.get("ChecksumAlgorithm"):
                raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no flexible checksums"}}, "PutObject")

        c.meta.events.register("before-parameter-build.s3.PutObject", refuse)
        return c, log

    monkeypatch.setattr(mod, "connect", strict)
    src = _make_dir(tmp_path / "src")
    summary = upload_dir(src, f"s3://{bucket}/f")
    assert summary["server_checksums"] is False
    download_dir(f"s3://{bucket}/f", tmp_path / "dst")
    assert _tree(tmp_path / "dst") == _tree(src)


def test_download_prefix_still_reads_raw_folders(bucket: str, tmp_path: Path) -> None:
    s3 = client()
    s3.put_object(Bucket=bucket, Key="raw/pos/p1/0.png", Body=b"a")
    s3.put_object(Bucket=bucket, Key="raw/neg/p2/0.png", Body=b"b")
    got = download_prefix(f"s3://{bucket}/raw", tmp_path / "raw")
    assert sorted(p.relative_to(tmp_path / "raw").as_posix() for p in got) == ["neg/p2/0.png", "pos/p1/0.png"]


def test_options_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUSYNTH_S3_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("LUSYNTH_S3_MULTIPART_THRESHOLD_MB", "8")
    opts = TransferOptions.from_env()
    assert opts.max_attempts == 3 and opts.multipart_threshold == 8 * 1024 * 1024
    assert opts.transfer_config().multipart_threshold == 8 * 1024 * 1024
    monkeypatch.setenv("LUSYNTH_S3_MAX_ATTEMPTS", "many")
    with pytest.raises(InputError, match="LUSYNTH_S3_MAX_ATTEMPTS"):
        TransferOptions.from_env()


def test_download_prefix_refuses_keys_that_leave_the_destination(bucket: str, tmp_path: Path) -> None:
    """S3 keys are free text: ``raw//tmp/x`` below ``raw/`` is the absolute path ``/tmp/x``. Such a
    key refuses the whole download, naming the key and the prefix, before any file is written."""
    outside = tmp_path / "outside"  # absolute: "raw/" + "/tmp/.../outside/escaped" holds a "//"
    hostile = [f"raw{{i}}/{outside}/escaped", "raw{i}/../escaped", "raw{i}/sub/../../escaped", "raw{i}/a\\b.png", "raw{i}//escaped"]
    s3 = client()
    for i, template in enumerate(hostile):
        key = template.format(i=i)
        s3.put_object(Bucket=bucket, Key=f"raw{i}/+first.png", Body=b"sorts before every hostile key")
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        dest = tmp_path / f"dest{i}"
        with pytest.raises(InputError, match="escapes the prefix") as err:
            download_prefix(f"s3://{bucket}/raw{i}", dest)
        assert repr(key) in str(err.value) and f"'raw{i}/'" in str(err.value)
        assert not dest.exists(), f"{key!r}: files were written before the key was refused"
    assert not outside.exists() and not (tmp_path / "escaped").exists()
