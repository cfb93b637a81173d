"""svinit: a small init for containers and virtual machines, and the harness that proves it boots and
shuts down cleanly."""

from pathlib import Path

__version__ = "0.1.0"

#: The source tree this package was installed from (editable installs), used to find init/, images/, qemu/.
ROOT = Path(__file__).resolve().parent.parent
