"""Create the lusynth buckets in an S3-compatible store (the bucket-bootstrap Job's script).

Reads ``LUSYNTH_BUCKETS`` (space- or comma-separated names), ``S3_ENDPOINT_URL`` and the standard
AWS credential variables; waits (bounded) until the endpoint answers, then creates each missing
bucket. Idempotent: a bucket that already exists is reported and left alone. Needs only boto3, so
it runs in the lusynth image; tests/infra/test_k8s.py runs it against moto.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

# S3 bucket naming rules (the subset MinIO and AWS both enforce)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_buckets(text: str) -> list[str]:
    """``"a b,c"`` -> ``["a", "b", "c"]``; rejects names S3 would refuse, naming them."""
    names = [n for n in re.split(r"[\s,]+", text.strip()) if n]
    if not names:
        raise ValueError("LUSYNTH_BUCKETS is empty: set it to the bucket names, e.g. 'lusynth-data lusynth-mlflow'")
    bad = [n for n in names if not _BUCKET_RE.match(n) or ".." in n]
    if bad:
        raise ValueError(f"LUSYNTH_BUCKETS: invalid S3 bucket name(s) {bad}: use 3-63 chars of a-z, 0-9, '.', '-'")
    return list(dict.fromkeys(names))


def wait_for_endpoint(client: Any, *, attempts: int = 30, delay_s: float = 2.0) -> None:
    """Poll ``list_buckets`` until the store answers (MinIO may still be starting); bounded."""
    from botocore.exceptions import BotoCoreError, ClientError

    last: Exception | None = None
    for i in range(attempts):
        try:
            client.list_buckets()
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                # waiting will not fix wrong credentials
                raise RuntimeError(f"S3 endpoint rejected the credentials ({code}): check Secret lusynth-minio-root") from exc
            last = exc
        except BotoCoreError as exc:
            last = exc
        if i + 1 < attempts:
            time.sleep(delay_s)
    raise RuntimeError(f"S3 endpoint did not answer after {attempts} attempts: {last}")


def ensure_buckets(client: Any, buckets: list[str]) -> dict[str, str]:
    """Create each missing bucket; return ``{bucket: "created" | "exists"}``."""
    from botocore.exceptions import ClientError

    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    result: dict[str, str] = {}
    for name in buckets:
        if name in existing:
            result[name] = "exists"
            continue
        try:
            client.create_bucket(Bucket=name)
            result[name] = "created"
        except ClientError as exc:
            # another bootstrap (or a person) created it between our list and create
            if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                result[name] = "exists"
            else:
                raise
    return result


def make_client() -> Any:
    """A boto3 S3 client for ``S3_ENDPOINT_URL`` (path-style, as MinIO expects)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def main() -> int:
    """Entry point of the Job: one JSON line with what was done; exit 1 with a reason on failure."""
    try:
        buckets = parse_buckets(os.environ.get("LUSYNTH_BUCKETS", ""))
        client = make_client()
        wait_for_endpoint(client)
        result = ensure_buckets(client, buckets)
    except Exception as exc:  # the Job's log is the only place a person looks: one clear line
        print(f"bucket bootstrap failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"endpoint": os.environ.get("S3_ENDPOINT_URL", "aws"), "buckets": result}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
