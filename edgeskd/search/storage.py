"""Where the Optuna study lives, and how an interrupted search picks up where it stopped.

- default: an Optuna journal file in the run folder (no server; safe for several local worker processes);
- `sqlite:///file.db`: one worker only (SQLite locks badly under parallel writers, so more are refused);
- `postgresql://user:password@host/db`: many workers on one or many machines join the same study by name; trials of a
  worker that died are detected by heartbeats and re-queued.
URLs are shown with the password masked, and error messages from the drivers are masked too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeskd.errors import SearchError
from edgeskd.search.records import ERROR, RETRY_OF  # noqa: F401  (ERROR re-exported for older imports)

JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 20
GRACE_S = 60


@dataclass(frozen=True)
class StorageInfo:
    kind: str                 # "journal" | "sqlite" | "postgresql"
    url: str                  # the real location (may hold a password: never print it)

    @property
    def display(self) -> str:
        return mask_url(self.url)

    @property
    def local(self) -> bool:
        """Only processes on this machine can use it, so a lock on the run folder proves no one else runs."""
        return self.kind in ("journal", "sqlite")


def mask_url(text: str) -> str:
    """Replace the password in every URL inside `text` by ***."""
    return re.sub(r"(\w[\w+.-]*://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def _mask_message(text: str, url: str) -> str:
    text = mask_url(text)
    match = re.match(r"\w[\w+.-]*://[^:/@\s]*:([^@\s]*)@", url)
    if match and match[1]:
        text = text.replace(match[1], "***")
    return text


def resolve_storage(url: str | None, run_dir: Path, workers: int) -> StorageInfo:
    if not url:
        return StorageInfo("journal", str(run_dir / JOURNAL_NAME))
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        return StorageInfo("postgresql", url.replace("postgres://", "postgresql://", 1))
    if url.startswith("sqlite:///"):
        if workers > 1:
            raise SearchError(f"storage {url} is SQLite, which is not safe for {workers} parallel workers; leave "
                              f"--storage out (journal file) or use a postgresql:// URL")
        return StorageInfo("sqlite", url)
    if url.endswith(".journal") or url.startswith("journal:"):
        return StorageInfo("journal", url.removeprefix("journal:"))
    raise SearchError(f"unsupported --storage {mask_url(url)!r}; expected a postgresql://user:password@host/db URL, "
                      f"sqlite:///FILE.db (one worker), or a FILE.journal path")


def open_storage(info: StorageInfo):
    """The Optuna storage object for `info` (connects to the server for PostgreSQL)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if info.kind == "journal":
            Path(info.url).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(info.url))
        if info.kind == "sqlite":
            return RDBStorage(info.url)
        with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
            warnings.simplefilter("ignore")
            return RDBStorage(_with_driver(info.url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=requeue_callback,
                              engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}})
    except optuna.exceptions.OptunaError as exc:
        raise SearchError(f"cannot open study storage {info.display}: {_mask_message(str(exc), info.url)}") from None
    except Exception as exc:  # driver errors (psycopg2, sqlalchemy) come in many types
        message = _mask_message(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, info.url)
        raise SearchError(f"cannot open study storage {info.display}: {type(exc).__name__}: {message}") from None


def _with_driver(url: str) -> str:
    """Name the PostgreSQL driver that is installed: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, while
    edgeskd's `postgres` extra installs psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is None:
            raise SearchError("PostgreSQL storage needs a driver: pip install 'edgeskd[postgres]' (psycopg2-binary)")
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder for the life of a search (its local workers are its children)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".search.lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise SearchError(f"another search is already running in {run_dir} (pid {holder}); wait for it, or "
                              f"give this one its own --study name") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def requeue_callback(study, trial) -> None:
    """Optuna's failed_trial_callback for heartbeat-detected dead trials: queue the same candidate again."""
    _enqueue_retry(study, trial)


def _enqueue_retry(study, trial) -> None:
    attrs = {RETRY_OF: trial.user_attrs.get(RETRY_OF, trial.number)}
    study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


def recover_interrupted(study, *, local: bool) -> list[int]:
    """Make an interrupted study whole again; returns the numbers of the trials queued again.

    A trial cut off by Ctrl-C is FAIL; one cut off by kill -9 stays RUNNING. With local storage (our lock is
    held, so nobody else runs) RUNNING trials are stale and set to FAIL; on PostgreSQL, heartbeats do that. Every
    interrupted trial (FAIL without an error of its own) is queued once more with the same parameters; completed
    and pruned trials are never touched, so nothing finished is lost or run twice.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if local:
        for t in trials:
            if t.state == TrialState.RUNNING:
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        trials = study.get_trials(deepcopy=False)
    else:
        import optuna

        with contextlib.suppress(Exception), warnings.catch_warnings():  # heartbeat off for this storage
            warnings.simplefilter("ignore")
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
    # The original number each trial stands for, and which originals are already queued or done again.
    covered = {t.user_attrs.get(RETRY_OF) for t in trials if t.user_attrs.get(RETRY_OF) is not None
               and t.state != TrialState.FAIL}
    requeued = []
    for t in trials:
        if t.state != TrialState.FAIL or ERROR in t.user_attrs:
            continue
        root = t.user_attrs.get(RETRY_OF, t.number)
        if root in covered:
            continue
        _enqueue_retry(study, t)
        covered.add(root)
        requeued.append(t.number)
    return requeued
