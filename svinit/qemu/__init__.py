"""A svinit machine on QEMU: ``definition`` (``qemu/ARCH.toml``: QEMU as data), ``accel`` (the KVM
probe), ``console`` (the serial console on a pty), ``qmp`` (the QMP client), ``channel`` (the command
channel and its protocol), ``shutdown`` (how QEMU ended, and the one definition of a clean end) and
``machine`` (:class:`~svinit.qemu.machine.QemuMachine`, which puts them together)."""
