"""The plugin's guard of a whole pytest run: it leaves nothing behind, even interrupted.

- The session's first process (pytest, or the pytest-xdist controller) marks the run: it sets
  ``$SVINIT_HARNESS_RUN`` (:data:`svinit.leftovers.RUN_ENV`) to itself before any worker starts, so
  every container, QEMU state directory and disk copy of any worker carries the run's mark (an outer
  run's mark, inherited by a nested pytest, is replaced: each run is its own).
- SIGTERM (a CI job cancelled, ``timeout``) ends the run as Ctrl-C does: the first raises
  KeyboardInterrupt, so pytest stops and every fixture's teardown stops and removes its machines; a
  second SIGTERM kills at once.
- When a run with pytest-xdist workers ends, its first process removes what its run left and whose
  owner is gone (a worker that pytest-xdist killed when the run was interrupted, before its teardown
  ran): containers, QEMU processes, temporary directories (:func:`svinit.leftovers.clean` with
  ``run``), and says so. A run without workers tears its own machines down; nothing more is looked at.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from svinit.leftovers import RUN_ENV, clean, owner

log = logging.getLogger(__name__)
_PREVIOUS = pytest.StashKey[object]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _terminate(signum: int, frame) -> None:
    # the next SIGTERM kills (a teardown that hangs must not keep the run alive)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt("SIGTERM: the run was asked to end; tearing its machines down")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        os.environ[RUN_ENV] = owner()
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_DFL, None):  # a handler of the user's own is kept
            signal.signal(signal.SIGTERM, _terminate)
            config.stash[_PREVIOUS] = previous


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS in config.stash and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # only a run with workers can leave a dead worker's machines: a run without has torn its own down
    # (no docker or harness folder looked at then)
    if _is_worker(config) or not os.environ.get(RUN_ENV) or not config.pluginmanager.has_plugin("dsession"):
        return
    done = clean(run=os.environ[RUN_ENV])
    if done.removed:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {line}" for line in done.removed)
        text = f"svinit: removed what this run's ended workers left:\n{lines}"
        if reporter is not None:
            reporter.write_line(text, yellow=True)
        else:
            log.warning("%s", text)
