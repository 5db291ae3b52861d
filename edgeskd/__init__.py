"""edgeskd: large pretrained vision model -> small, fast, verified classifier for a bedside device.

The public surface is re-exported here; stages live in their own subpackages (data, models, selection, training,
latency, export, search) and data flows one way through them.
"""

__version__ = "0.1.0"
