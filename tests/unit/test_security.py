"""No secrets in the tree: access keys, secret keys, private keys or passwords in tracked files."""

from __future__ import annotations

import re
import subprocess

from tests.support.paths import REPO

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "password assignment": re.compile(r"(?i)\bpassword\s*[=:]\s*['\"][^'\"]{6,}['\"]"),
}


def tracked_files():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / name for name in listed.splitlines() if (REPO / name).is_file()]


def test_no_secrets_in_tracked_files():
    found = []
    for path in tracked_files():
        if path.suffix in {".parquet", ".jar", ".zip"}:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{path.relative_to(REPO)}: {what}" for what, pattern in PATTERNS.items() if pattern.search(text)]
    assert found == []


def test_the_scan_would_find_one():
    # Built by concatenation so that this file itself stays clean.
    assert PATTERNS["AWS access key id"].search("key = " + "AKIA" + "ABCDEFGHIJKLMNOP")
    assert PATTERNS["private key"].search("-----BEGIN RSA " + "PRIVATE KEY-----")
