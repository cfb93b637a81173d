"""A svinit container as a machine (svinit.machine), on docker-py.

Commands run with ``docker exec /bin/sh -c`` (busybox sh in the guest), the stop is ``docker stop``
(SIGTERM to process 1, SIGKILL after the grace), files are read with ``get_archive``, which also works
once the container has stopped. Nothing is pulled: the image must be present locally.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image
from svinit.leftovers import LABEL as LABEL  # the label on every container the harness starts
from svinit.leftovers import container_labels
from svinit.machine import GUEST_WATCHDOG, CommandResult, Machine, MachineError, ShutdownResult, Timeout

log = logging.getLogger(__name__)


class ContainerMachine(Machine):
    """A container of a svinit image, as a machine with verbs.

    Args:
        image: a local image (never pulled).
        command: CMD: a list, or a string for the image's shell form; None keeps the image's.
        environment: variables, as ``docker run -e`` ({"FOO": "bar"} or ["FOO=bar"]).
        volumes: bind mounts, ``{host_path: {"bind": path, "mode": "rw"}}`` or ``["/h:/c:ro"]``.
        read_only: ``--read-only`` (add a tmpfs on /run: svinit needs it writable).
        tmpfs: ``{"/run": ""}`` as ``--tmpfs /run``.
        tty: ``-t``.
        stdin_open: ``-i``.
        stop_timeout: the seconds ``docker stop`` waits before SIGKILL (Docker's default, 10).
        name: the container's name (default: Docker picks one); messages use it.
        client: a docker client (default: from the environment).
        timeout_multiplier: see Machine.
        **run_options: more arguments of docker-py's ``containers.create`` (cap_add, hostname, ...).

    Use as a context manager, or call start() and close():

    >>> with ContainerMachine("svinit:alpine") as m:
    ...     m.start()
    ...     m.wait_for_service("heartbeat")
    ...     print(m.succeed("cat /etc/alpine-release"))
    ...     print(m.shutdown())
    """

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        command: list[str] | str | None = None,
        *,
        environment: dict[str, str] | list[str] | None = None,
        volumes: dict[str, Any] | list[str] | None = None,
        read_only: bool = False,
        tmpfs: dict[str, str] | None = None,
        tty: bool = False,
        stdin_open: bool = False,
        stop_timeout: int = 10,
        name: str | None = None,
        client: docker.DockerClient | None = None,
        timeout_multiplier: float | None = None,
        **run_options: Any,
    ):
        super().__init__(name or image, timeout_multiplier)
        self.image = image
        self.command = command
        self.stop_timeout = stop_timeout
        self.options: dict[str, Any] = dict(
            environment=environment,
            volumes=volumes,
            read_only=read_only,
            tmpfs=tmpfs,
            tty=tty,
            stdin_open=stdin_open,
            name=name,
            **run_options,
        )
        self.options["labels"] = {**container_labels(), **(run_options.get("labels") or {})}
        self._client = client
        self.container: docker.models.containers.Container | None = None
        self.result: ShutdownResult | None = None
        #: time.monotonic() at docker start
        self.started_at: float | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def id(self) -> str:
        return self._running_or_stopped().id

    def _running_or_stopped(self) -> docker.models.containers.Container:
        if self.container is None:
            raise MachineError(f"{self.name}: not started (call start())")
        return self.container

    def start(self) -> None:
        """Creates and starts the container (create + start: docker-py's run would pull a missing image).

        Raises:
            ImageMissing: the image is not present locally.
            MachineError: docker refused to create or start it.
        """
        import docker.errors

        require_image(self.client, self.image)
        try:
            self.container = self.client.containers.create(self.image, self.command, **self.options)
            if self.options.get("name") is None:
                self.name = f"{self.image} ({self.container.short_id})"
            self.started_at = time.monotonic()
            self.container.start()
        except docker.errors.APIError as e:
            raise MachineError(f"{self.name}: docker could not start a container of {self.image}: {e}") from e
        log.debug("%s: started %s", self.name, self.container.id)

    def is_running(self) -> bool:
        c = self._running_or_stopped()
        c.reload()
        return c.status in ("running", "restarting")

    def execute(self, cmd: str, timeout: float | None = None) -> CommandResult:
        """Runs *cmd* with ``/bin/sh -c`` in the container (``docker exec``).

        Args:
            cmd: a POSIX sh command line (busybox sh: no bashisms).
            timeout: kill it, and what it started, after these seconds (then rc is 137); needs
                ``setsid`` in the guest (busybox has it).

        Raises:
            MachineError: the container is not running.
        """
        import docker.errors

        argv = ["/bin/sh", "-c", cmd]
        if timeout is not None:
            argv = ["/bin/sh", "-c", GUEST_WATCHDOG, "sh", f"{timeout:.3f}", cmd]
        c = self._running_or_stopped()
        try:
            rc, (out, err) = c.exec_run(argv, demux=True)
        except docker.errors.APIError as e:
            raise MachineError(f"{self.name}: cannot run `{cmd}`: {e.explanation or e}") from e
        return CommandResult(
            cmd, rc, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")
        )

    def shutdown(self) -> ShutdownResult:
        """``docker stop``: SIGTERM to process 1, SIGKILL after ``stop_timeout`` s; waits for the exit.

        Returns:
            The exit code and the seconds the stop took. A container that had exited already gives its
            exit code and 0 s.
        """
        import docker.errors

        c = self._running_or_stopped()
        if self.result is not None:
            return self.result
        if not self.is_running():
            self.result = ShutdownResult(self.wait(), 0.0)
            return self.result
        t0 = time.monotonic()
        try:
            c.stop(timeout=self.stop_timeout)
            code = c.wait(timeout=self.stop_timeout + self.timeout(30))["StatusCode"]
        except docker.errors.APIError as e:
            raise MachineError(f"{self.name}: docker stop failed: {e}") from e
        self.result = ShutdownResult(code, time.monotonic() - t0)
        log.debug("%s: docker stop: exit %d in %.2f s", self.name, code, self.result.seconds)
        return self.result

    def wait(self, timeout: float | None = None) -> int:
        """Waits until the container exits by itself (a CMD ended); returns its exit code.

        Raises:
            Timeout: it still runs after *timeout* (scaled) seconds.
        """
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        c = self._running_or_stopped()
        try:
            return c.wait(timeout=None if timeout is None else self.timeout(timeout))["StatusCode"]
        except (ReadTimeout, RequestsConnectionError):
            raise Timeout(f"{self.name} still runs after {self.timeout(timeout or 0):.3g} s") from None

    def logs(self) -> str:
        """The container's stdout and stderr so far (``docker logs``)."""
        return self._running_or_stopped().logs(stdout=True, stderr=True).decode(errors="replace")

    def archive(self, path: str) -> tarfile.TarFile:
        """*path* (a file or a directory tree) as a tar archive, read into memory; works on a stopped
        container too.

        Raises:
            FileNotFoundError: *path* does not exist in the container.
            MachineError: docker failed otherwise.
        """
        import docker.errors

        c = self._running_or_stopped()
        try:
            stream, _ = c.get_archive(path)
            data = b"".join(stream)
        except docker.errors.NotFound:
            raise FileNotFoundError(f"{self.name}: no {path} in the container") from None
        except docker.errors.APIError as e:
            raise MachineError(f"{self.name}: cannot read {path}: {e}") from e
        return tarfile.open(fileobj=io.BytesIO(data))

    def read_file(self, path: str) -> bytes:
        """The contents of the file *path*; works on a stopped container too.

        Raises:
            FileNotFoundError: no such file.
        """
        with self.archive(path) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member is not None else None
            if f is None:
                raise FileNotFoundError(f"{self.name}: {path} is not a regular file")
            return f.read()

    def copy_out(self, path: str, dest: Path) -> Path:
        """Copies *path* (a tree) out of the container into the directory *dest*, without devices or
        FIFOs (supervise's control and ok); returns dest."""
        dest.mkdir(parents=True, exist_ok=True)
        with self.archive(path) as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir() or m.issym()]
            tar.extractall(dest, members=members, filter="tar")
        return dest

    @property
    def host(self):
        """A testinfra host on this container (backend docker: ``docker exec ... /bin/sh -c``)."""
        import testinfra

        return testinfra.get_host(f"docker://{self.id}")

    def close(self) -> None:
        """Removes the container (running or not), with its anonymous volumes."""
        import docker.errors

        if self.container is None:
            return
        try:
            self.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            log.warning("%s: could not remove container %s: %s", self.name, self.container.id, e)
        self.container = None

    def __enter__(self) -> ContainerMachine:
        return self

    def __repr__(self) -> str:
        return f"<ContainerMachine {self.name}>"
