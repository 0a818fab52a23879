"""The shared helpers: one slugify, one sha256, one JSON reader with an actionable error."""

from __future__ import annotations

import hashlib

import pytest

from lusynth.errors import InputError
from lusynth.util import file_sha256, read_json, slugify


def test_slugify() -> None:
    assert slugify("real+synthetic") == "real-synthetic"
    assert slugify("a b", keep="A-Za-z0-9_-", replacement="_") == "a_b"
    assert slugify("+++") == "x"


def test_file_sha256_and_read_json(tmp_path) -> None:
    p = tmp_path / "a.json"
    p.write_text('{"k": 1}')
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest() and read_json(p) == {"k": 1}
    with pytest.raises(InputError, match=r"no b.json \(not a thing\); run x"):
        read_json(tmp_path / "b.json", what="a thing", hint="run x")
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(InputError, match="unreadable JSON"):
        read_json(tmp_path / "c.json")
