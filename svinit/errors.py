"""svinit's one exception root.

Every error svinit raises for something a user can cause (a missing tool, image or file, a fetch or a
build that failed, a machine that did not do what it was asked) is an :class:`SvinitError` whose message
names the file or command and the fix; ``svinit``'s main prints it as one sentence and exits 1. Each
layer defines its own subclasses beside the code that raises them (``FetchError``, ``BuildError``,
``MachineError``...), so ``except SvinitError`` catches them all.
"""


class SvinitError(Exception):
    """Something svinit could not do; the message says what, where, and how to fix it."""
