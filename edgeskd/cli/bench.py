"""`edgeskd bench` (placeholder until the latency issue lands)."""

from edgeskd.cli._common import register_placeholder


def register(sub, name, help_text):
    return register_placeholder(sub, name, help_text, "latency issue")
