"""The latency cache: a search never measures the same candidate twice on the same target.

Key = (artifact or architecture hash, fingerprint hash, measurement settings). Stored in one SQLite file: every put
is a transaction, so a crash or two processes writing at once never leave a half-written or lost entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeskd.errors import LatencyError
from edgeskd.latency.fingerprint import fingerprint_hash
from edgeskd.latency.measurement import Measurement


def cache_key(artifact_hash: str, fingerprint: dict[str, Any], settings: dict[str, Any]) -> str:
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{artifact_hash}|{fingerprint_hash(fingerprint)}|{settings_hash}"


class LatencyCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS latency (key TEXT PRIMARY KEY, measurement TEXT NOT NULL, "
                           "created REAL NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise LatencyError(f"latency cache {self.path} is not a usable SQLite file: {exc}") from exc

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # commits on success, rolls back on error
                yield db
        finally:
            db.close()

    def get(self, key: str) -> Measurement | None:
        with self._connect() as db:
            row = db.execute("SELECT measurement FROM latency WHERE key = ?", (key,)).fetchone()
        return Measurement.from_dict(json.loads(row[0])) if row else None

    def put(self, key: str, m: Measurement) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO latency (key, measurement, created) VALUES (?, ?, ?)",
                       (key, json.dumps(m.to_dict()), time.time()))

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM latency").fetchone()[0])
