"""Real servers for the Celery tests: a redis-server and `celery worker` processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    limit = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > limit:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the child is SIGKILLed when the test process dies.

    A test run killed mid-way (Ctrl-C twice, a CI timeout) used to leave redis-server and
    Celery workers running, and the next run's workers then shared their queues. util-linux's
    ``setpriv --pdeathsig`` sets the parent-death signal (Linux prctl PR_SET_PDEATHSIG) and
    execs the command; a ``preexec_fn`` would do the same but is unsafe in a process with
    threads (the mock server runs in one). Without setpriv, the fixtures' teardown is all there
    is.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


class RedisServer:
    """Debian's redis-server on a free loopback port: no persistence, data in a temp dir."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server is not installed: run bash .ci/system-packages.sh")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = (directory / "redis.log").open("wb")
        self.proc = subprocess.Popen(
            die_with_parent(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                    "--protected-mode",
                    "yes",
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert self.proc.poll() is None, "redis-server exited; see redis.log"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(up, 30, "redis-server")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Worker:
    """One `celery worker` node, in its own process group (so the test can kill all of it)."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        env: dict[str, str],
        *,
        queues: str = "apnskit-tests",
        pool: str = "prefork",
        concurrency: int = 2,
    ) -> None:
        self.name = name
        self.logfile = log_dir / f"{name}.log"
        self.stderr = log_dir / f"{name}.stderr"
        with self.stderr.open("wb") as stderr:
            self.proc = subprocess.Popen(
                die_with_parent(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "apnskit_test_celery_app",
                        "worker",
                        "--pool",
                        pool,
                        "--concurrency",
                        str(concurrency),
                        "--hostname",
                        f"{name}@%h",
                        "--queues",
                        queues,
                        "--loglevel",
                        "INFO",
                        "--logfile",
                        str(self.logfile),
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ]
                ),
                cwd=HERE,
                env={**os.environ, **env, "PYTHONPATH": str(HERE)},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_for(ready, timeout, f"worker {self.name}", interval=0.2)

    def pool_pids(self) -> list[int]:
        """The prefork children's pids."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """SIGKILL the whole node: main process and pool children, as a lost machine."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM): finish what runs, then exit; SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        # Whatever is left of the group (a pool process that outlived its parent).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
