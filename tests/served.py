"""Real ``statemachine serve`` processes on 127.0.0.1 for the service's tests: started on
port 0, ready once they print ``serving on``, stopped with SIGTERM (or killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx


class Served:
    """One running ``statemachine serve``: its ``url``, a ready ``client``, its output lines."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, token: str | None) -> None:
        self.process = process
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        assert process.stdout is not None
        assert process.stderr is not None
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[bytes]) -> None:
        for line in stream:
            with self._changed:
                self._lines[name].append(line.decode(errors="replace"))
                self._changed.notify_all()
        with self._changed:
            self._lines[name].append("")  # end of stream
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines["stderr"])

    @property
    def stdout(self) -> str:
        """What the server printed after its ``serving on`` line."""
        with self._changed:
            return "".join(self._lines["stdout"])

    def wait_for_stderr(self, text: str) -> None:
        """Return once the server has written ``text`` to stderr (fail if it exits first)."""
        self._wait_for("stderr", text)

    def wait_for_stdout(self, text: str) -> None:
        """Return once the server has printed ``text`` (fail if it exits first)."""
        self._wait_for("stdout", text)

    def _wait_for(self, name: str, text: str) -> None:
        lines = self._lines[name]
        with self._changed:  # a bound, not a measure: a line that never comes fails the test
            self._changed.wait_for(lambda: text in "".join(lines) or "" in lines, timeout=120)
            assert text in "".join(lines), f"the server ended without {text!r}:\n{self.stderr}"

    def stop(self) -> int:
        """SIGTERM, then the exit code once it has finished."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait()

    def kill(self) -> None:
        self.client.close()
        self.process.kill()
        self.process.wait()


def start(
    db: str, *args: str, token: str | None = None, env: dict[str, str] | None = None
) -> Served:
    """Start ``statemachine serve --db DB --port 0 ARGS`` and wait for its ``serving on`` line."""
    command = [sys.executable, "-m", "statemachine", "serve", "--db", db, "--port", "0", *args]
    if token is not None:
        command += ["--token", token]
    # A token or secret of the developer's shell would change what the tests expect.
    unset = ("STATEMACHINE_TOKEN", "STATEMACHINE_GOCARDLESS_SECRET")
    inherited = {k: v for k, v in os.environ.items() if k not in unset}
    environment = {**inherited, **(env or {})}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("serving on "):
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"serve did not start: {line!r}\n{err.decode(errors='replace')}")
    return Served(process, line.split()[-1], token)


@contextmanager
def serving(db: str, *args: str, token: str | None = None) -> Iterator[Served]:
    """A server for the block, stopped (SIGTERM) at its end."""
    served = start(db, *args, token=token)
    try:
        yield served
    finally:
        served.stop()
