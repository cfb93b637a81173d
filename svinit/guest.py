"""The contract between svinit's sh in the guest and this harness, on the Python side, in one place.

The sh side keeps its half in ``init/sh/lib/lib.sh`` (``SVINIT_RUN``, ``sv_scandir``,
``SVINIT_SHUTDOWN_SERVICE``, ``sv_report_stopped``, ``sv_report_done``); ``tests/test_guest.py`` runs that
real sh and parses what it prints with the parsers here, so the two cannot drift apart.

- Paths: svinit's run-time directory (:data:`RUN`), the file naming the scan directory stage 1 chose
  (/service, or its mirror in /run on a read-only root), and :data:`SCANDIR_SH`, the one shell
  expression that reads it.
- Names: the shutdown service (linked into the scan directory by poweroff; not a service to wait for),
  svscan's own logger.
- The console report lines the shutdown prints (with ``svinit.harness`` set) and their parsers:
  ``svinit: stopped: NAME @S log @L`` (when each service and its logger went down, TAI64N from their
  supervise/status records) and ``svinit: ACTION: done in N ms (exit code C)``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from svinit.tai64n import Tai64n

#: svinit's files in the guest: lib.sh, stage1, the drop-ins; its programs in bin/ (lib.sh: SVINIT_LIB).
LIB = "/usr/lib/svinit"
#: svinit's run-time directory in the guest (lib.sh: SVINIT_RUN's default; a user other than root who
#: cannot write /run has /tmp/svinit-UID instead, which lib.sh finds).
RUN = "/run/svinit"
#: Where stage 1 writes the scan directory it chose (lib.sh: sv_scandir reads it).
SCANDIR_FILE = f"{RUN}/scandir"
#: The scan directory when stage 1 wrote none (not svinit's stage 1, or before it ran).
DEFAULT_SCANDIR = "/service"
#: A shell expression (double-quoted) for the scan directory: lib.sh's sv_scandir itself (it finds the
#: run-time directory of a user other than root too), or /service in an image without svinit.
SCANDIR_SH = (
    f'"$(if [ -r {LIB}/lib.sh ]; then . {LIB}/lib.sh && sv_scandir; else echo {DEFAULT_SCANDIR}; fi)"'
)
#: The shutdown service poweroff links into the scan directory (lib.sh: SVINIT_SHUTDOWN_SERVICE).
SHUTDOWN_SERVICE = "svinit-shutdown"
#: svinit's logger of svscan itself (and of services without a log/): it stops after every other logger.
SVSCAN_LOG = "svscan-log"

#: One round trip: the scan directory on the first line, then svstat of every service that should run
#: (not the shutdown service, no ``down`` file) and of its logger. Exit 3: no scan directory; 4: no svstat.
SVSTAT_ALL = f"""sd={SCANDIR_SH}
cd "$sd" 2>/dev/null || {{ echo "no scan directory $sd" >&2; exit 3; }}
command -v svstat >/dev/null || {{ echo "no svstat in PATH" >&2; exit 4; }}
echo "$sd"
set --
for d in *; do
  [ -d "$d" ] && [ -f "$d/run" ] || continue
  [ "$d" = {SHUTDOWN_SERVICE} ] && continue
  [ -e "$d/down" ] || set -- "$@" "$sd/$d"
  [ -d "$d/log" ] && [ ! -e "$d/log/down" ] && set -- "$@" "$sd/$d/log"
done
[ $# -eq 0 ] || svstat "$@"
"""


def scandir_path(name: str) -> str:
    """A shell word for the service *name* (``NAME``, ``NAME/log``, or an absolute directory)."""
    return shlex.quote(name) if name.startswith("/") else f"{SCANDIR_SH}/{shlex.quote(name)}"


# The report lines (lib.sh: sv_report_stopped, sv_report_done).

STOPPED_LINE = re.compile(r"svinit: stopped: (\S+) @([0-9a-f]{24}|) log @([0-9a-f]{24}|)")
DONE_LINE = re.compile(r"svinit: (\w+): done in (\d+) ms \(exit code (\d+)\)")
#: The shutdown's first line, lib/shutdown's: who asked for it (lib.sh: sv_request).
ASKED_LINE = re.compile(r"svinit: (?:poweroff|reboot|halt) asked by ([^\r\n]+)")


def parse_stop_report(console: str) -> dict[str, tuple[Tai64n | None, Tai64n | None]]:
    """{service: (down, logger down)} from every ``svinit: stopped: NAME @S log @L`` line of *console*;
    a stamp is None when its record could not be read (the line then has ``@`` alone)."""
    out = {}
    for m in STOPPED_LINE.finditer(console):
        name, s, lg = m.groups()
        out[name] = (Tai64n.from_label("@" + s) if s else None, Tai64n.from_label("@" + lg) if lg else None)
    return out


@dataclass(frozen=True)
class Done:
    """svinit's last words of a shutdown: ``svinit: ACTION: done in MS ms (exit code CODE)``."""

    action: str
    ms: int
    code: int


def parse_asked_by(console: str) -> str | None:
    """Who asked for the last shutdown of *console* (``svinit: ACTION asked by WHO``: the program, its
    pid and its parent), or None."""
    found = ASKED_LINE.findall(console)
    return found[-1] if found else None


def parse_done(console: str) -> Done | None:
    """The last ``svinit: ACTION: done in N ms (exit code C)`` line of *console*, or None."""
    found = DONE_LINE.findall(console)
    if not found:
        return None
    action, ms, code = found[-1]
    return Done(action, int(ms), int(code))
