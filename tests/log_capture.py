"""A handler that sees every log record of the whole test run and keeps those that hold a full token.

`tests/conftest.py` keeps it attached to the root logger before every test (something may reconfigure
logging mid-run) and fails the session if any record leaked a token; the push tests also assert on it.
"""

from __future__ import annotations

import logging
import re
import traceback

# Shapes of every token the tests create (tests.factories, tests.pushes.factories, the API tests, the
# simulator) and of real FCM tokens (":APA91b"); a prefix is 6 chars plus "…", far shorter than these.
TOKEN_SHAPES = re.compile(r"(tok[0-9a-f]{20,}|[0-9a-f]{24,}:APA91b|:APA91b[0-9A-Za-z_-]{20,}|fcm-[0-9a-f]{20,})")


class EveryRecord(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.seen = 0
        self.leaks: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.seen += 1
        if TOKEN_SHAPES.search(text):
            self.leaks.append((record.name, text[:300]))


RUN_RECORDS = EveryRecord()


def attach() -> None:
    root = logging.getLogger()
    if RUN_RECORDS not in root.handlers:
        root.addHandler(RUN_RECORDS)
