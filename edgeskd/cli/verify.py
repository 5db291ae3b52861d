"""`edgeskd verify` (placeholder until the export issue lands)."""

from edgeskd.cli._common import register_placeholder


def register(sub, name, help_text):
    return register_placeholder(sub, name, help_text, "export issue")
