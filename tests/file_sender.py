"""A sender for dispatcher processes in tests: appends each notice id to $NOTICE_LOG."""

from __future__ import annotations

import os
import time

from statemachine import Notice


class FileSender:
    name = "file"

    def send(self, notice: Notice) -> None:
        time.sleep(0.002)  # a provider's round trip, so that dispatchers overlap
        with open(os.environ["NOTICE_LOG"], "a", encoding="utf-8") as log:
            log.write(notice.notice_id + "\n")


def make() -> FileSender:
    return FileSender()
