"""svinit: a small init for containers and virtual machines, and the harness that proves it boots and
shuts down cleanly."""

import os
from pathlib import Path

__version__ = "0.1.0"

#: The svinit source tree (init/, images/, qemu/): $SVINIT_ROOT, else the checkout this package runs from.
ROOT = Path(os.environ.get("SVINIT_ROOT") or Path(__file__).resolve().parent.parent)
