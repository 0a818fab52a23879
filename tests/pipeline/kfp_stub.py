"""A loopback stub of the KFP v2beta1 REST endpoints that ``kfp.Client`` calls for upload/run/recurring
run: it records every request (method, path, query, body) and answers with the smallest JSON the
client's models accept, keeping just enough state (pipelines, versions, experiments) for lookups.

It is not KFP: it checks nothing about the IR it receives beyond parsing it as YAML. The tests
use it to see the requests the real ``kfp.Client`` builds from lusynth's calls.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, {"file": text, "name": ...} for multipart uploads, or None


@dataclass
class KfpStub:
    requests: list[Request] = field(default_factory=list)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"display_name", "versions": [version...]}
    experiments: dict[str, str] = field(default_factory=dict)  # id -> name

    def calls(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]


def _multipart(headers: Any, raw: bytes) -> dict[str, Any]:
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        out[part.get_param("name", header="content-disposition")] = part.get_content()
    return out


def _handler(stub: KfpStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, obj: Any, status: int = 200) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            url = urlparse(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            body: Any = None
            if raw and "multipart/form-data" in (self.headers.get("Content-Type") or ""):
                body = _multipart(self.headers, raw)
            elif raw:
                body = json.loads(raw)
            req = Request(self.command, url.path, parse_qs(url.query), body)
            stub.requests.append(req)
            return req

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            req = self._record()
            p, q = req.path, req.query
            if p == "/apis/v2beta1/healthz":
                return self._send({"multi_user": False})
            if p == "/apis/v2beta1/pipelines":
                want = json.loads(q["filter"][0])["predicates"][0]["stringValue"] if "filter" in q else None
                found = [{"pipeline_id": i, "display_name": v["display_name"]} for i, v in stub.pipelines.items()
                         if want is None or v["display_name"] == want]
                return self._send({"pipelines": found, "total_size": len(found)})
            if p.startswith("/apis/v2beta1/pipelines/") and p.endswith("/versions"):
                pid = p.split("/")[4]
                versions = list(stub.pipelines[pid]["versions"])
                if "created_at desc" in q.get("sort_by", [""])[0]:
                    versions = versions[::-1]
                size = int(q.get("page_size", ["100"])[0])
                return self._send({"pipeline_versions": versions[:size], "total_size": len(versions), "next_page_token": ""})
            if p == "/apis/v2beta1/experiments":
                want = json.loads(q["filter"][0])["predicates"][0]["stringValue"] if "filter" in q else None
                found = [{"experiment_id": i, "display_name": n} for i, n in stub.experiments.items() if want in (None, n)]
                return self._send({"experiments": found, "total_size": len(found)})
            return self._send({"error": f"stub: GET {p} not implemented"}, 404)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            req = self._record()
            p, q = req.path, req.query
            if p == "/apis/v2beta1/pipelines/upload":
                yaml.safe_load_all(req.body["uploadfile"])  # it is YAML
                pid = str(uuid.uuid4())
                name = q["name"][0]
                stub.pipelines[pid] = {"display_name": name, "versions": []}
                stub.pipelines[pid]["versions"].append({"pipeline_id": pid, "pipeline_version_id": str(uuid.uuid4()), "display_name": name})
                return self._send({"pipeline_id": pid, "display_name": name})
            if p == "/apis/v2beta1/pipelines/upload_version":
                pid = q["pipelineid"][0]
                v = {"pipeline_id": pid, "pipeline_version_id": str(uuid.uuid4()), "display_name": q["name"][0]}
                stub.pipelines[pid]["versions"].append(v)
                return self._send(v)
            if p == "/apis/v2beta1/experiments":
                eid = str(uuid.uuid4())
                stub.experiments[eid] = req.body["display_name"]
                return self._send({"experiment_id": eid, "display_name": req.body["display_name"]})
            if p == "/apis/v2beta1/runs":
                return self._send({**req.body, "run_id": str(uuid.uuid4())})
            if p == "/apis/v2beta1/recurringruns":
                return self._send({**req.body, "recurring_run_id": str(uuid.uuid4())})
            return self._send({"error": f"stub: POST {p} not implemented"}, 404)

    return Handler


class StubServer:
    """``with StubServer() as (url, stub): ...``: the stub on 127.0.0.1, a free port, in a thread."""

    def __enter__(self) -> tuple[str, KfpStub]:
        self.stub = KfpStub()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.stub))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}", self.stub

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
