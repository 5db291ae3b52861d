"""`edgeskd data` (placeholder until the data-layer issue lands)."""

from edgeskd.cli._common import register_placeholder


def register(sub, name, help_text):
    return register_placeholder(sub, name, help_text, "data-layer issue")
