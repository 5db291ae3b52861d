"""Exception types. Every error edgeskd raises on bad input is an EdgeskdError whose message names the file or
value at fault and what was expected; the CLI prints it as one line and exits non-zero."""

from __future__ import annotations


class EdgeskdError(Exception):
    """Base class: a problem the user can fix (bad file, bad value, missing runtime)."""


class DataError(EdgeskdError):
    """An image, dataset file or split that cannot be used as given."""


class ModelError(EdgeskdError):
    """A teacher/student name, weight file or checkpoint that does not fit."""


class SelectionError(EdgeskdError):
    """Weight selection cannot map this teacher onto this student."""


class TrainingError(EdgeskdError):
    """Training stopped: NaN loss, label/head mismatch, bad configuration."""


class LatencyError(EdgeskdError):
    """A measurement could not be made or compared (runtime missing, fingerprints differ, budget missed)."""


class ExportError(EdgeskdError):
    """An export or its parity gate failed; no artifact is kept."""


class SearchError(EdgeskdError):
    """The search cannot run or found no candidate within the budget."""


class MissingDependency(EdgeskdError):
    """An optional runtime (TensorRT, CUDA, a dataset package) is not installed here."""


class OutputError(EdgeskdError, OSError):
    """An output folder or file cannot be written (read-only, missing, full disk, no permission, already in use).

    Also an OSError, so code that already handles OSError keeps working; the CLI prints it as one line, exit 2."""


class RuntimeAdapterError(LatencyError, ExportError):
    """A runtime adapter (edgeskd.runtimes) cannot build or run what was asked. Both a latency and an export error,
    because both stages drive runtimes through the adapters and their callers catch their own kind."""
