"""sha256 manifests: what a registered version must contain, checked before anything is served."""
from __future__ import annotations

import hashlib
from pathlib import Path


class TamperedArtifactError(RuntimeError):
    """A registered file is missing or its bytes differ from the sha256 recorded at registration."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def manifest(root: Path) -> dict[str, str]:
    """relative path → sha256 for every file under root."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def verify(root: Path, expected: dict[str, str], what: str) -> None:
    """Raise TamperedArtifactError unless root holds exactly the expected files with the expected hashes."""
    if not expected:
        raise TamperedArtifactError(f"{what}: no sha256 manifest was recorded; re-register the model")
    actual = manifest(root)
    problems = []
    for rel, digest in sorted(expected.items()):
        if rel not in actual:
            problems.append(f"{rel}: missing")
        elif actual[rel] != digest:
            problems.append(f"{rel}: sha256 {actual[rel][:16]}... != registered {digest[:16]}...")
    problems += [f"{rel}: not part of the registered version" for rel in sorted(set(actual) - set(expected))]
    if problems:
        raise TamperedArtifactError(
            f"{what} failed its integrity check and will not be served: {'; '.join(problems)}. "
            "The artifact store was modified after registration; restore it or register a new version."
        )
