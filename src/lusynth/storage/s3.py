"""S3 through boto3: retries from botocore's config, transfers through the transfer manager.

The endpoint comes from ``LUSYNTH_S3_ENDPOINT_URL`` (or the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``), so the same code talks to AWS, MinIO, SeaweedFS or moto. Credentials come
from the standard AWS chain (env, profile, IRSA); they are never logged and never appear in an
error message (messages name the endpoint and the key instead).

Directories (frame stores, reports, model dirs) travel with :func:`upload_dir` /
:func:`download_dir`. A reader sees a directory only when it is complete: the objects go under
``<prefix>/`` and a manifest ``<prefix>/_lusynth_manifest.json`` (every file's size and SHA-256)
is written LAST; :func:`download_dir` refuses a prefix without one and checks every checksum.
Raw user folders (ingest's ``s3://`` sources) have no manifest: :func:`download_prefix` reads them.

This module is the public face of :mod:`lusynth.storage`; the work is done by one module per
concern: ``uri`` (s3:// locations), ``client`` (boto3 client, options, errors), ``manifest`` (the
manifest protocol), ``plan`` (which files an upload sends, reuses, deletes: pure), ``upload``,
``download``, ``digests`` (SHA-256 while streaming, remembered by file identity), ``transfer``.
"""

from __future__ import annotations

from lusynth.storage.client import IncompleteUpload, StorageError, TransferOptions, client, endpoint_url
from lusynth.storage.download import download_dir, download_prefix
from lusynth.storage.manifest import MANIFEST_NAME, MANIFEST_SCHEMA, read_manifest
from lusynth.storage.plan import LocalFile, UploadPlan, plan_upload
from lusynth.storage.upload import upload_dir
from lusynth.storage.uri import S3Uri, parse_s3_uri
from lusynth.util import file_sha256

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "IncompleteUpload",
    "LocalFile",
    "S3Uri",
    "StorageError",
    "TransferOptions",
    "UploadPlan",
    "client",
    "download_dir",
    "download_prefix",
    "endpoint_url",
    "file_sha256",
    "parse_s3_uri",
    "plan_upload",
    "read_manifest",
    "upload_dir",
]
