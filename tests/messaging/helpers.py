"""Helpers for messaging tests: a group with members, and running callables in real threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from tests.factories import GroupFactory, GroupMemberFactory


def group_with_members(n: int = 2, **group_kwargs):
    """A group and n members of its organization (each with a distinct user)."""
    group = GroupFactory(**group_kwargs)
    members = [GroupMemberFactory(group=group) for _ in range(n)]
    return group, members


def run_in_threads(target: Callable[[int], Any], n: int, *, start_together: bool = True) -> list[Any]:
    """Run target(i) in n threads, each with its own DB connection (closed at the end).

    Returns the results in thread order; re-raises the first exception a thread hit.
    """
    barrier = threading.Barrier(n) if start_together else None
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            if barrier is not None:
                barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
