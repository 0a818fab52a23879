"""s3:// locations, and which object keys may be written below a destination directory."""

from __future__ import annotations

import pytest

from lusynth.errors import InputError
from lusynth.storage.uri import S3Uri, parse_s3_uri, prefix_of, relative_key


def test_parse_and_prefix() -> None:
    assert parse_s3_uri("s3://b/runs/g/") == S3Uri("b", "runs/g/")
    assert prefix_of(parse_s3_uri("s3://b//runs/g/")) == "runs/g/"
    assert prefix_of(parse_s3_uri("s3://b")) == ""
    with pytest.raises(InputError, match="no bucket name"):
        parse_s3_uri("s3:///x")


def test_relative_key_keeps_ordinary_keys() -> None:
    assert relative_key("raw/pos/p1/0.png", "raw/", uri="s3://b/raw") == "pos/p1/0.png"
    assert relative_key("x..y/z", "", uri="s3://b") == "x..y/z"  # '..' inside a name is just a name


@pytest.mark.parametrize("key", ["raw//tmp/x", "raw/../x", "raw/a/../../x", "raw/a\\b", "raw/a//b", "raw/"])
def test_relative_key_refuses_keys_that_leave_the_destination(key: str) -> None:
    with pytest.raises(InputError, match=r"s3://b/raw: object key .* escapes the prefix 'raw/'"):
        relative_key(key, "raw/", uri="s3://b/raw")


def test_relative_key_refuses_a_leading_slash_at_the_bucket_root() -> None:
    with pytest.raises(InputError, match="escapes the prefix"):
        relative_key("/etc/passwd", "", uri="s3://b")
