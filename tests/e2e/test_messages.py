"""Messages end to end: direct, broadcast,
task threads, order under load, redelivery, offline recipients."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.a2a import Message, Part, Role
from schemas.messages import SendMessage
from services.hub import Rejected
from tests.conftest import wait_for
from tests.e2e.test_tasks import register, skilled
from tests.support.inbox import Inbox

pytestmark = pytest.mark.kafka


@pytest.fixture
async def inboxes() -> AsyncIterator[Callable[..., Awaitable[Inbox]]]:
    opened: list[Inbox] = []

    async def open_inbox(stack: Any, agent_id: str, **options: Any) -> Inbox:
        inbox = await Inbox(stack.settings, agent_id, **options).start()
        opened.append(inbox)
        return inbox

    yield open_inbox
    for inbox in opened:
        await inbox.stop()


async def send(client: Any, **body: Any) -> dict[str, Any]:
    answer = await client.post("/messages", json=body)
    assert answer.status_code == 201, answer.text
    sent: dict[str, Any] = answer.json()
    return sent


def command(sender: str, to: str, text: str, message_id: str | None = None) -> SendMessage:
    return SendMessage(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        sender_id=sender,
        to=(to,),
        message=Message(
            message_id=message_id or str(uuid.uuid4()), role=Role.AGENT, parts=[Part(text=text)]
        ),
    )


async def test_direct_messages_arrive_in_order_and_are_read_once(stack: Any, inboxes: Any) -> None:
    hub = await stack()
    client = hub.client
    alice = await register(client, skilled("alice", "plan"))
    bob = await register(client, skilled("bob", "write"))
    bob_inbox = await inboxes(hub, bob)

    sent = [
        await send(client, sender_id=alice, to=bob, content=f"note {i}", message_type="info")
        for i in range(10)
    ]
    assert [m["recipients"] for m in sent] == [[bob]] * 10
    assert [m["record"]["seq"] for m in sent] == list(range(1, 11))
    record = sent[0]["record"]
    assert record["sender_id"] == alice and record["delivery"] == "direct"
    assert record["message"]["parts"][0]["text"] == "note 0"
    assert record["message_type"] == "info"

    # Over Kafka: bob's inbox partition has them all, in order, once each.
    await wait_for(lambda: len(bob_inbox.messages()) >= 10, timeout=15, what="bob's deliveries")
    delivered = bob_inbox.messages()
    assert [m.message.parts[0].text for m in delivered] == [f"note {i}" for i in range(10)]

    # Over HTTP: Thronglets' receive returns the unread ones and marks them read.
    unread = (await client.get(f"/agents/{bob}/messages", params={"unread": True})).json()
    assert len(unread) == 10
    received = (await client.post(f"/agents/{bob}/messages/receive")).json()["messages"]
    assert [m["record"]["message"]["parts"][0]["text"] for m in received] == [
        f"note {i}" for i in range(10)
    ]
    again = (await client.post(f"/agents/{bob}/messages/receive")).json()["messages"]
    assert again == []
    one = (await client.get(f"/messages/{record['message_id']}")).json()
    assert one["read_by"] == [bob]

    # An explicit ack, and the history queries.
    reply = await send(client, sender_id=bob, to=[alice], content="thanks")
    acked = await client.post(
        f"/agents/{alice}/messages/ack", json={"message_ids": [reply["record"]["message_id"]]}
    )
    assert acked.json()["acked"] == [reply["record"]["message_id"]]
    assert (await client.get(f"/agents/{alice}/messages", params={"unread": True})).json() == []
    from_alice = (await client.get("/messages", params={"sender_id": alice})).json()
    assert from_alice["total_size"] == 10
    assert from_alice["messages"][0]["record"]["message"]["parts"][0]["text"] == "note 9"
    to_alice = (await client.get("/messages", params={"recipient_id": alice})).json()
    assert [m["record"]["message_id"] for m in to_alice["messages"]] == [
        reply["record"]["message_id"]
    ]
    paged = (await client.get("/messages", params={"sender_id": alice, "page_size": 4})).json()
    assert len(paged["messages"]) == 4 and paged["next_page_token"]
    infos = (await client.get("/messages", params={"type": "info"})).json()
    assert infos["total_size"] == 10
    recent = (await client.get("/messages/recent", params={"limit": 3})).json()
    assert [m["record"]["message_id"] for m in recent][0] == reply["record"]["message_id"]

    # Deleting leaves a tombstone: hidden from reads, still in the log.
    deleted = await client.delete(f"/messages/{record['message_id']}")
    assert deleted.status_code == 200, deleted.text
    assert (await client.get(f"/messages/{record['message_id']}")).status_code == 404
    assert (await client.delete(f"/messages/{record['message_id']}")).status_code == 404
    events = (await client.get("/events", params={"type": "message."})).json()
    assert any(e["type"] == "message.deleted" for e in events)

    # Sending the same message id again is a safe retry: the original comes back.
    again_sent = await send(
        client,
        sender_id=alice,
        to=bob,
        content="note 1",
        message_id=sent[1]["record"]["message_id"],
    )
    assert again_sent["record"] == sent[1]["record"]


async def test_bad_messages_are_refused_with_a_reason(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    alice = await register(client, skilled("alice", "plan"))
    bob = await register(client, skilled("bob", "write"))

    unknown = await client.post(
        "/messages", json={"sender_id": alice, "to": "nobody", "content": "hi"}
    )
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]
    for body, why in [
        ({"sender_id": alice, "content": "hi"}, "recipients"),
        ({"sender_id": alice, "to": bob}, "content"),
        ({"sender_id": alice, "to": bob, "content": "x", "broadcast": True}, "broadcast"),
        ({"sender_id": alice, "to": "bad id!", "content": "x"}, "pattern"),
        ({"sender_id": alice, "to": bob, "content": "x", "message_type": "shout"}, "message_type"),
    ]:
        answer = await client.post("/messages", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert why in answer.text
    no_task = await client.post(
        "/messages", json={"sender_id": alice, "task_id": "no-such-task", "content": "hi"}
    )
    assert no_task.status_code == 404

    assert (await client.delete(f"/agents/{bob}")).status_code == 200
    gone = await client.post("/messages", json={"sender_id": alice, "to": bob, "content": "hi"})
    assert gone.status_code == 404 and "deregistered" in gone.json()["detail"]

    # A plain Kafka client gets the same refusals as rejection events from the worker.
    with pytest.raises(Rejected, match="deregistered"):
        await hub.hub.execute(command(alice, bob, "hi"))
    with pytest.raises(Rejected, match="is not registered"):
        await hub.hub.execute(command(alice, "stranger", "hi"))
    sent = command(alice, alice, "to myself")
    await hub.hub.execute(sent)
    again = command(alice, alice, "same id", message_id=sent.message.message_id)
    with pytest.raises(Rejected, match="was sent already"):
        await hub.hub.execute(again)


async def test_broadcast_reaches_every_online_agent(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    sender = await register(client, skilled("announcer", "announce"))
    gpus = [await register(client, skilled(f"gpu-{i}", "gpu")) for i in range(2)]
    cpus = [await register(client, skilled(f"cpu-{i}", "cpu")) for i in range(3)]
    sleeper = await register(client, skilled("sleeper", "gpu"), ttl=1)
    await wait_for(
        lambda: hub.hub.directory.status_of(sleeper) == "offline",
        timeout=15,
        what="the sleeper to go offline",
    )

    everyone = await send(client, sender_id=sender, broadcast=True, content="maintenance at 5")
    assert sorted(everyone["recipients"]) == sorted(gpus + cpus)
    assert everyone["record"]["delivery"] == "broadcast"
    assert everyone["record"]["recipient_count"] == 5
    only_gpus = await send(client, sender_id=sender, capability="GPU", content="new drivers")
    assert sorted(only_gpus["recipients"]) == sorted(gpus)
    for agent_id in gpus + cpus:
        box = (await client.get(f"/agents/{agent_id}/messages")).json()
        texts = [m["record"]["message"]["parts"][0]["text"] for m in box]
        expected = ["maintenance at 5"] + (["new drivers"] if agent_id in gpus else [])
        assert texts == expected
    assert (await client.get(f"/agents/{sleeper}/messages")).json() == []


async def test_task_thread(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    boss = await register(client, skilled("boss", "plan"))
    worker = await register(client, skilled("worker", "summarize"))
    observer = await register(client, skilled("observer", "watch"))
    task = (
        await client.post("/tasks", json={"capability": "summarize", "requester_id": boss})
    ).json()
    assert task["assignee_id"] == worker

    question = await send(client, sender_id=worker, task_id=task["id"], content="Which format?")
    assert question["recipients"] == [boss] and question["record"]["delivery"] == "task"
    answer = await send(
        client, sender_id=boss, task_id=task["id"], to=[observer], content="Markdown"
    )
    assert sorted(answer["recipients"]) == sorted([worker, observer])
    thread = (await client.get(f"/messages/task/{task['id']}")).json()
    assert [m["record"]["message"]["parts"][0]["text"] for m in thread] == [
        "Which format?",
        "Markdown",
    ]
    assert (await client.get("/messages/task/nope")).status_code == 404
    by_task = (await client.get("/messages", params={"task_id": task["id"]})).json()
    assert by_task["total_size"] == 2


async def test_order_under_load_and_redelivered_commands(stack: Any, inboxes: Any) -> None:
    """Three senders publish straight to Kafka, some commands twice: the recipient gets each
    message once, and each sender's messages in the order they were sent."""
    hub = await stack()
    client = hub.client
    senders = [await register(client, skilled(f"sender-{i}", "talk")) for i in range(3)]
    reader = await register(client, skilled("reader", "listen"))
    inbox = await inboxes(hub, reader)
    per_sender = 150
    commands = {s: [command(s, reader, f"{s}:{n}") for n in range(per_sender)] for s in senders}

    async def publish(sender: str) -> None:
        for n, sent in enumerate(commands[sender]):
            await hub.hub.publish(sent)
            if n % 10 == 0:  # a redelivered command (same command id)
                await hub.hub.publish(sent)

    await asyncio.gather(*(publish(s) for s in senders))
    total = 3 * per_sender
    await wait_for(
        lambda: len(inbox.messages()) >= total,
        timeout=60,
        what=f"{total} deliveries",
        detail=lambda: f"got {len(inbox.messages())}",
    )
    await asyncio.sleep(0.5)  # anything extra would show up now
    delivered = inbox.messages()
    ids = [m.message_id for m in delivered]
    assert len(ids) == len(set(ids)) == total, "a message was delivered twice"
    order: dict[str, list[int]] = defaultdict(list)
    for m in delivered:
        sender, n = m.message.parts[0].text.split(":")
        order[sender].append(int(n))
    assert all(order[s] == list(range(per_sender)) for s in senders)
    mailbox = (await client.get(f"/agents/{reader}/messages")).json()
    assert len(mailbox) == total


async def test_an_offline_agent_gets_its_messages_when_it_returns(stack: Any, inboxes: Any) -> None:
    hub = await stack()
    client = hub.client
    alice = await register(client, skilled("alice", "plan"))
    bob = await register(client, skilled("bob", "write"), ttl=1)
    await wait_for(
        lambda: hub.hub.directory.status_of(bob) == "offline",
        timeout=15,
        what="bob to go offline",
    )
    for i in range(3):
        await send(client, sender_id=alice, to=bob, content=f"while you were out {i}")

    # Bob comes back and reads his partition of the inbox from where he left off.
    assert (await client.post(f"/agents/{bob}/heartbeat")).json()["status"] == "online"
    inbox = await inboxes(hub, bob, from_beginning=True)
    await wait_for(lambda: len(inbox.messages()) == 3, timeout=15, what="bob's backlog")
    received = (await client.post(f"/agents/{bob}/messages/receive")).json()["messages"]
    assert [m["record"]["message"]["parts"][0]["text"] for m in received] == [
        f"while you were out {i}" for i in range(3)
    ]
