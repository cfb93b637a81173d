"""What the tests of the supervision suite share; it lives in the package (svinit.pidns, svinit.servicedir)
so the benchmarks use it too, and is named here for the tests that import it from tests.util."""

from svinit.pidns import PidNamespace, Scanner, children_of, comm, cpu_seconds, wait_for, zombies_of
from svinit.servicedir import make_service, svstatus, write_exec

__all__ = [
    "PidNamespace",
    "Scanner",
    "children_of",
    "comm",
    "cpu_seconds",
    "make_service",
    "svstatus",
    "wait_for",
    "write_exec",
    "zombies_of",
]
