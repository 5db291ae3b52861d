"""Latency measured on the target: targets, the measurement protocol, fingerprints, the cache, the remote agent.

A latency number is a property of an exported artifact on a target runtime, never of a PyTorch module; every
number carries the fingerprint of what produced it, and numbers with different fingerprints are not compared.
"""

from edgeskd.latency.cache import LatencyCache, cache_key
from edgeskd.latency.fingerprint import FINGERPRINT_KEYS, fingerprint_diff, fingerprint_hash, machine_fingerprint
from edgeskd.latency.hashing import architecture_hash
from edgeskd.latency.measure import measure, measure_model, target_fingerprint
from edgeskd.latency.measurement import Measurement, check_budget, compare, summarize
from edgeskd.latency.targets import STATISTICS, Target, get_target, list_targets

__all__ = [
    "Target", "get_target", "list_targets", "STATISTICS", "Measurement", "measure", "measure_model",
    "LatencyCache", "cache_key", "check_budget", "compare", "summarize", "architecture_hash", "target_fingerprint",
    "machine_fingerprint", "fingerprint_hash", "fingerprint_diff", "FINGERPRINT_KEYS",
]
