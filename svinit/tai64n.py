"""TAI64N time stamps, as daemontools writes them: in supervise/status records (12 packed bytes) and in
multilog's ``t`` labels (``@`` and 24 hex digits)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from svinit.errors import SvinitError

#: TAI64 labels count from 2^62, and TAI is 10 s ahead of the UTC the kernel keeps (as daemontools).
TAI64_UNIX_OFFSET = 2**62 + 10


class TimestampError(SvinitError, ValueError):
    """Bytes or text that are no TAI64N stamp; the message says what to check."""


@dataclass(frozen=True, order=True)
class Tai64n:
    """A TAI64N time stamp: TAI64 seconds (2^62 + 10 + unix time) and nanoseconds. Ordered by time."""

    sec: int
    nano: int = 0

    @classmethod
    def from_bytes(cls, b: bytes) -> Tai64n:
        """Reads the 12-byte packed form (seconds then nanoseconds, big-endian)."""
        if len(b) != 12:
            raise TimestampError(f"a TAI64N stamp is 12 bytes, got {len(b)}")
        return cls(int.from_bytes(b[:8], "big"), int.from_bytes(b[8:], "big"))

    @classmethod
    def from_label(cls, label: str) -> Tai64n:
        """Reads multilog's label, ``@`` and 24 hex digits (``@4000000065a1b2c3...``)."""
        m = re.fullmatch(r"@([0-9a-fA-F]{16})([0-9a-fA-F]{8})", label)
        if not m:
            raise TimestampError(
                f"{label!r} is not a TAI64N label ('@' and 24 hex digits): was the log written by "
                f"multilog with the 't' action?"
            )
        return cls(int(m.group(1), 16), int(m.group(2), 16))

    @classmethod
    def from_unix(cls, t: float) -> Tai64n:
        sec = int(t)
        return cls(TAI64_UNIX_OFFSET + sec, int(round((t - sec) * 1e9)))

    @property
    def unix(self) -> float:
        """Seconds since the epoch (UTC), as time.time() counts them."""
        return self.sec - TAI64_UNIX_OFFSET + self.nano / 1e9

    @property
    def label(self) -> str:
        return f"@{self.sec:016x}{self.nano:08x}"

    def __sub__(self, other: Tai64n) -> float:
        """The seconds from *other* to this stamp (negative when *other* is later)."""
        return (self.sec - other.sec) + (self.nano - other.nano) / 1e9

    def __str__(self) -> str:
        return self.label
