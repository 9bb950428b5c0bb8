"""send_message: gapless seq under concurrency, idempotency (also racing), the commit signal."""

from __future__ import annotations

import threading
import uuid

import pytest

from config.errors import ApiError
from messaging import queries, services
from messaging.models import Group, Message
from messaging.signals import message_committed
from tests.factories import GroupMemberFactory, UserFactory
from tests.messaging.helpers import group_with_members, run_in_threads


def _send(member, body: str = "hi", client_id: uuid.UUID | None = None):
    return services.send_message(
        sender=member.user, group_id=member.group_id, client_generated_id=client_id or uuid.uuid4(), body=body
    )


@pytest.mark.django_db
def test_first_sends_get_seq_one_two_three_and_move_last_seq():
    group, (alice, bob) = group_with_members(2)
    seqs = [_send(alice)[0].seq, _send(bob)[0].seq, _send(alice)[0].seq]
    assert seqs == [1, 2, 3]
    group.refresh_from_db()
    assert group.last_seq == 3


@pytest.mark.django_db
def test_replay_returns_the_first_message_and_consumes_no_seq():
    group, (alice,) = group_with_members(1)
    client_id = uuid.uuid4()
    first, created = _send(alice, "one", client_id)
    again, created_again = _send(alice, "changed body", client_id)
    assert created and not created_again
    assert (again.id, again.seq, again.body) == (first.id, 1, "one")
    assert _send(alice)[0].seq == 2  # the replay's rolled-back increment left no gap
    assert Message.objects.filter(group=group).count() == 2


@pytest.mark.django_db
def test_client_id_reused_in_another_group_is_409_and_writes_nothing():
    alice = GroupMemberFactory()
    other = GroupMemberFactory(user=alice.user, group__organization=alice.group.organization)
    client_id = uuid.uuid4()
    _send(alice, client_id=client_id)
    with pytest.raises(ApiError) as err:
        _send(other, client_id=client_id)
    assert err.value.status_code == 409
    assert Group.objects.get(pk=other.group_id).last_seq == 0


@pytest.mark.django_db
def test_blocked_member_cannot_send_and_the_seq_is_not_taken():
    group, (alice,) = group_with_members(1)
    blocked = GroupMemberFactory(group=group, is_blocked=True)
    with pytest.raises(ApiError) as err:
        _send(blocked)
    assert err.value.status_code == 403
    assert _send(alice)[0].seq == 1


@pytest.mark.django_db
def test_non_member_and_other_organization_get_404():
    group, _ = group_with_members(1)
    same_org_outsider = UserFactory(organization=group.organization)
    other_org_user = UserFactory()
    for user in (same_org_outsider, other_org_user):
        with pytest.raises(ApiError) as err:
            services.send_message(sender=user, group_id=group.pk, client_generated_id=uuid.uuid4(), body="x")
        assert err.value.status_code == 404
    assert not Message.objects.filter(group=group).exists()


@pytest.mark.django_db
def test_signal_fires_once_per_new_message_after_commit_and_not_for_a_replay(django_capture_on_commit_callbacks):
    group, (alice,) = group_with_members(1)
    received: list[Message] = []

    def receiver(sender, message, **kwargs):
        received.append(message)

    message_committed.connect(receiver, weak=False)
    try:
        client_id = uuid.uuid4()
        with django_capture_on_commit_callbacks(execute=True):
            first, _ = _send(alice, client_id=client_id)
            assert received == []  # nothing before the commit
            _send(alice, client_id=client_id)
        assert [m.id for m in received] == [first.id]
        assert received[0].group.pk == group.pk and received[0].sender == alice.user
        assert received[0].group.organization_id == group.organization_id
    finally:
        message_committed.disconnect(receiver)


@pytest.mark.django_db
def test_a_failing_receiver_never_breaks_the_send(django_capture_on_commit_callbacks):
    _, (alice,) = group_with_members(1)

    def broken(sender, message, **kwargs):
        raise RuntimeError("receiver bug")

    message_committed.connect(broken, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            message, created = _send(alice)
        assert created and message.seq == 1
    finally:
        message_committed.disconnect(broken)


@pytest.mark.django_db(transaction=True)
def test_signal_fires_right_after_the_commit_outside_any_transaction():
    _, (alice,) = group_with_members(1)
    seen: list[tuple[int, bool]] = []

    def receiver(sender, message, **kwargs):
        # Visible to a fresh query: the row is committed when the receiver runs.
        seen.append((message.seq, Message.objects.filter(pk=message.pk).exists()))

    message_committed.connect(receiver, weak=False)
    try:
        client_id = uuid.uuid4()
        _send(alice, client_id=client_id)
        _send(alice, client_id=client_id)
        _send(alice)
    finally:
        message_committed.disconnect(receiver)
    assert seen == [(1, True), (2, True)]


@pytest.mark.django_db(transaction=True)
def test_eight_threads_racing_one_client_id_make_one_row_with_the_same_id_everywhere():
    group, (alice,) = group_with_members(1)
    client_id = uuid.uuid4()
    results = run_in_threads(lambda i: _send(alice, f"try {i}", client_id), 8)
    ids = {message.id for message, _ in results}
    assert len(ids) == 1
    assert sum(created for _, created in results) == 1
    assert Message.objects.filter(sender=alice.user, client_generated_id=client_id).count() == 1
    group.refresh_from_db()
    assert group.last_seq == 1  # the seven losers' increments all rolled back
    assert _send(alice)[0].seq == 2


@pytest.mark.django_db(transaction=True)
def test_sixteen_service_writers_on_one_group_leave_no_gap_or_duplicate():
    group, members = group_with_members(4)

    def write(i: int) -> list[int]:
        return [_send(members[i % 4], f"w{i}-{k}")[0].seq for k in range(50)]

    per_thread = run_in_threads(write, 16)
    for seqs in per_thread:
        assert seqs == sorted(seqs)  # one writer's own messages are ordered
    stored = list(Message.objects.filter(group=group).order_by("seq").values_list("seq", flat=True))
    assert stored == list(range(1, 801))
    group.refresh_from_db()
    assert group.last_seq == 800


@pytest.mark.django_db(transaction=True)
def test_reader_syncing_after_seq_while_eight_writers_send_sees_every_message_once_in_order():
    group, members = group_with_members(8)
    per_writer = 60
    total = 8 * per_writer
    writers_done = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        cursor = 0
        try:
            while True:
                finished = writers_done.is_set()  # read before syncing: a final pass after the last write
                page = queries.sync_after(Group(pk=group.pk, last_seq=0), cursor, limit=7)
                seen.extend(m["seq"] for m in page["messages"])
                if page["messages"]:
                    cursor = page["messages"][-1]["seq"]
                elif finished:
                    return
        finally:
            from django.db import connection

            connection.close()

    reader_thread = threading.Thread(target=reader)
    reader_thread.start()
    try:
        run_in_threads(lambda i: [_send(members[i], f"{i}-{k}") for k in range(per_writer)], 8)
    finally:
        writers_done.set()
        reader_thread.join(60)
    assert seen == list(range(1, total + 1))


@pytest.mark.django_db
def test_body_outside_one_to_4000_characters_is_refused_by_the_service():
    group, (alice,) = group_with_members(1)
    for body in ("", "x" * 4001):
        with pytest.raises(ApiError) as err:
            _send(alice, body)
        assert err.value.status_code == 400
    assert _send(alice, "x" * 4000)[0].seq == 1


@pytest.mark.django_db(transaction=True)
def test_members_reading_at_the_same_moment_leave_every_message_read():
    group, members = group_with_members(8)
    for k in range(20):
        _send(members[0], f"m{k}")
    readers = members[1:]
    run_in_threads(
        lambda i: services.record_receipt(user=readers[i].user, group_id=group.pk, status="read", up_to_seq=20),
        len(readers),
    )
    assert set(Message.objects.filter(group=group).values_list("status", flat=True)) == {"read"}


@pytest.mark.django_db
def test_the_send_statement_is_prepared_on_its_connection_after_a_few_sends():
    """PostgreSQL stops re-planning the hot insert (Django disables psycopg's automatic prepare by default)."""
    from django.db import connection

    group, (alice, _bob) = group_with_members(2)
    for _ in range(8):
        services.send_message(sender=alice.user, group_id=group.pk, client_generated_id=uuid.uuid4(), body="hi")
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%UPDATE messaging_group%"])
        assert cur.fetchone()[0] == 1
