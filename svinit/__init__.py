"""svinit: a small init for containers and virtual machines, and the harness that proves it boots and
shuts down cleanly.

Where its data is (the init package, ``images/``, ``qemu/``) is :mod:`svinit.resources`' concern: the
checkout it runs from, else, installed from a wheel, its package data. ``$SVINIT_ROOT`` is for
development only: it names another source tree to use instead.
"""

from svinit.resources import ROOT

__version__ = "0.1.0"

__all__ = ["ROOT", "__version__"]
