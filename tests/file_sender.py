"""A sender for dispatcher processes in tests: appends each notice id to $NOTICE_LOG.

``make`` prints "ready" and waits for a line on stdin before the dispatcher claims anything, so
that a test starts several dispatchers' claims at once."""

from __future__ import annotations

import os
import sys

from statemachine import Notice


class FileSender:
    name = "file"

    def send(self, notice: Notice) -> None:
        with open(os.environ["NOTICE_LOG"], "a", encoding="utf-8") as log:
            log.write(notice.notice_id + "\n")


def make() -> FileSender:
    print("ready", flush=True)
    sys.stdin.readline()  # the test's go, once every dispatcher is ready
    return FileSender()
