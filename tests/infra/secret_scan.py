"""A compact secret scanner for the repository: AWS keys, private keys, literal credentials.

Scans what git would ship: tracked files plus untracked files that are not ignored. A finding is a
credential-looking literal; placeholders (``REPLACE_ME``, ``${VAR}``, ``$(VAR)``, ``<...>``) are fine.
The only allow-list is a handful of obviously fake test credentials, and only under ``tests/``.

    python tests/infra/secret_scan.py [ROOT]    # prints findings, exit 1 if any
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# fake credentials that the tests use against local servers (moto, SeaweedFS); allowed in tests/ only
TEST_ALLOWLIST = frozenset({"test", "testing", "minioadmin", "fake", "dummy"})
# placeholders and references: REPLACE_ME, shell/Kubernetes expansions ($VAR, ${VAR}, $(cmd)),
# <angle> and {{template}} holes, masks, and ENV_VAR_NAMES (a mapping to a variable, not a value)
PLACEHOLDER_RE = re.compile(r"REPLACE_ME|^\$[({A-Za-z_]|^<[^>]*>$|^\{\{.*\}\}$|^\*+$|^x+$|^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# shorter right-hand sides are prose ("PGPASSWORD: it ..."), not credentials
MIN_SECRET_LEN = 4
# keys whose value is a secret (not an id, a path or a reference to a secret)
_CRED_KEY = r"[A-Za-z0-9_.-]*(?:password|passwd|secret_access_key|secret_key|secretkey|api_key|apikey|auth_token|access_token|client_secret|private_key)"
_SKIP_VALUES = frozenset({"", "true", "false", "null", "none", "~", "str", "bytes", "optional[str]"})

RULES: dict[str, re.Pattern[str]] = {
    "aws-access-key-id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private-key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    # KEY: value / KEY=value / "KEY": "value" / --from-literal=KEY=value
    "credential-assignment": re.compile(
        rf"(?i)(?<![A-Za-z0-9_])(?P<key>{_CRED_KEY})[\"']?\s*[:=]\s*(?P<quote>[\"']?)(?P<value>[^\s\"',;)}}\]]*)"
    ),
    # a Kubernetes env entry with a literal value: - name: X_PASSWORD \n value: literal
    "credential-env-literal": re.compile(
        rf"(?i)name:\s*[\"']?(?P<key>{_CRED_KEY})[\"']?\s*\n\s*value:\s*(?P<quote>[\"']?)(?P<value>[^\s\"']*)"
    ),
    # scheme://user:password@host
    "credential-in-url": re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:(?P<value>[^@\s/\"']+)@"),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.excerpt}"


def _is_allowed(value: str, rel_path: str, quoted: bool) -> bool:
    v = value.strip()
    if len(v) < MIN_SECRET_LEN or v.lower() in _SKIP_VALUES or PLACEHOLDER_RE.search(v):
        return True
    # an unquoted right-hand side in Python is a variable or call, not a literal
    if rel_path.endswith(".py") and not quoted:
        return True
    return rel_path.startswith("tests/") and v.lower() in TEST_ALLOWLIST


def scan_text(text: str, rel_path: str) -> list[Finding]:
    """All findings in one file's text (``rel_path`` is repo-relative, used for the allow-list)."""
    findings: list[Finding] = []
    for rule, pattern in RULES.items():
        for m in pattern.finditer(text):
            if "value" in m.groupdict():
                quoted = bool(m.groupdict().get("quote"))
                if _is_allowed(m.group("value"), rel_path, quoted):
                    continue
            line = text.count("\n", 0, m.start()) + 1
            # never echo the secret itself: show the key and a masked value
            shown = m.group("key") + "=***" if "key" in m.groupdict() else m.group(0)[:12] + "***"
            findings.append(Finding(rel_path, line, rule, shown))
    return findings


def repo_files(root: Path) -> list[Path]:
    """Tracked files plus untracked, non-ignored ones (what a commit of the work tree would contain)."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()
    return [root / p for p in sorted(set(out.split("\0"))) if p]


def scan_repo(root: Path, *, max_bytes: int = 2_000_000) -> list[Finding]:
    """Scan every text file of the repository at ``root``; binary and huge files are skipped."""
    findings: list[Finding] = []
    for path in repo_files(root):
        if not path.is_file() or path.stat().st_size > max_bytes:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        findings.extend(scan_text(data.decode("utf-8", errors="replace"), path.relative_to(root).as_posix()))
    return findings


if __name__ == "__main__":
    found = scan_repo(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
    for f in found:
        print(f)
    sys.exit(1 if found else 0)
