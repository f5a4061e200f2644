"""docs/SECURITY.md names only tests that exist, so the threat table cannot silently rot."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def referenced_tests() -> list[tuple[str, str]]:
    """(file, test) pairs; ``::test_x`` continues the file named just before it."""
    text = (ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    pairs, current = [], None
    for file, test in re.findall(r"`(test_\w+\.py)?::(test_\w+)`", text):
        current = file or current
        assert current, f"::{test} follows no file name"
        pairs.append((current, test))
    return pairs


def test_every_test_named_in_the_security_doc_exists():
    pairs = referenced_tests()
    assert len(pairs) >= 30
    missing = [
        f"{file}::{test}"
        for file, test in pairs
        if not (ROOT / "tests" / file).exists()
        or not re.search(rf"^(async )?def {test}\(", (ROOT / "tests" / file).read_text(), re.M)
    ]
    assert not missing, missing
