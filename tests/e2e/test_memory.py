"""Shared memory end to end: compare-and-set, access control, history,
and notifications to subscribers over the inbox topic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.test_messages import inboxes  # noqa: F401 - a fixture
from tests.e2e.test_tasks import register, skilled

pytestmark = pytest.mark.kafka


async def put(client: Any, key: str, **body: Any) -> Any:
    return await client.put(f"/memory/{key}", json=body)


async def test_compare_and_set(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    owner = await register(client, skilled("owner", "plan"))

    created = await put(client, "plan.v", value={"step": 1}, agent_id=owner, expected_version=0)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["acl"]["owner"] == owner
    exists = await put(client, "plan.v", value={"step": 9}, agent_id=owner, expected_version=0)
    assert exists.status_code == 409
    assert exists.json()["current_version"] == 1 and "version 1" in exists.json()["detail"]

    # Ten writers race from version 1: exactly one wins, the others learn the new version.
    answers = await asyncio.gather(
        *(
            put(client, "plan.v", value={"step": 2, "by": i}, agent_id=owner, expected_version=1)
            for i in range(10)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 9, [a.text for a in answers]
    assert {a.json()["current_version"] for a in answers if a.status_code == 409} == {2}
    item = (await client.get("/memory/plan.v")).json()
    assert item["version"] == 2 and item["value"]["step"] == 2

    plain = await put(client, "plan.v", value=[1, "two", None, {"x": 3.5}], agent_id=owner)
    assert plain.json()["version"] == 3 and plain.json()["value"] == [1, "two", None, {"x": 3.5}]
    history = (await client.get("/memory/plan.v/history")).json()
    assert [e["item"]["version"] for e in history] == [1, 2, 3]

    gone = await client.delete("/memory/plan.v", params={"expected_version": 2})
    assert gone.status_code == 409 and gone.json()["current_version"] == 3
    assert (
        await client.delete("/memory/plan.v", params={"expected_version": 3})
    ).status_code == 200
    assert (await client.get("/memory/plan.v")).status_code == 404
    assert (await client.delete("/memory/plan.v")).status_code == 404
    again = await put(client, "plan.v", value="back", agent_id=owner, expected_version=0)
    assert again.json()["version"] == 5  # versions never repeat, across deletion too

    listed = (await client.get("/memory", params={"prefix": "plan."})).json()
    assert [i["key"] for i in listed["items"]] == ["plan.v"]
    for n in range(3):
        assert (await put(client, f"paged.{n}", value=n)).status_code == 201
    first = (await client.get("/memory", params={"prefix": "paged.", "page_size": 2})).json()
    rest = (
        await client.get(
            "/memory", params={"prefix": "paged.", "page_token": first["next_page_token"]}
        )
    ).json()
    assert [i["key"] for i in first["items"] + rest["items"]] == ["paged.0", "paged.1", "paged.2"]
    assert first["total"] == rest["total"] == 3 and rest.get("next_page_token") is None
    for bad in ["bad key!", "-leading"]:
        assert (await put(client, bad, value=1)).status_code == 422
    assert (await put(client, "k", value=1, expected_version=-1)).status_code == 422
    huge = await put(client, "big", value="x" * 300_000)
    assert huge.status_code == 413 and "limit" in huge.json()["detail"]  # refused at the door


async def test_access_control(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    owner, writer, reader, stranger = [
        await register(client, skilled(name, "x")) for name in ("owner", "writer", "reader", "x")
    ]
    made = await put(
        client,
        "secret",
        value={"v": 1},
        agent_id=owner,
        readers=[reader],
        writers=[writer],
    )
    assert made.status_code == 201, made.text

    assert (await client.get("/memory/secret", params={"agent_id": reader})).status_code == 200
    assert (await client.get("/memory/secret", params={"agent_id": writer})).status_code == 200
    refused = await client.get("/memory/secret", params={"agent_id": stranger})
    assert refused.status_code == 403 and "readers" in refused.json()["detail"]
    hidden = (await client.get("/memory", params={"agent_id": stranger})).json()
    assert hidden["items"] == []
    history = await client.get("/memory/secret/history", params={"agent_id": stranger})
    assert history.status_code == 403

    assert (await put(client, "secret", value=2, agent_id=writer)).status_code == 200
    for who in (reader, stranger):
        denied = await put(client, "secret", value=3, agent_id=who)
        assert denied.status_code == 403 and "writer" in denied.json()["detail"]
    acl_change = await put(client, "secret", value=3, agent_id=writer, readers=["*"])
    assert acl_change.status_code == 403 and "owner" in acl_change.json()["detail"]
    no_delete = await client.delete("/memory/secret", params={"agent_id": reader})
    assert no_delete.status_code == 403
    opened = await put(client, "secret", value=4, agent_id=owner, readers=["*"])
    assert opened.json()["acl"]["readers"] == ["*"]
    assert (await client.get("/memory/secret", params={"agent_id": stranger})).status_code == 200
    assert (await client.get("/memory/secret")).status_code == 200  # the operator


async def test_subscribers_hear_about_changes(stack: Any, inboxes: Any) -> None:  # noqa: F811
    hub = await stack()
    client = hub.client
    writer, listener, outsider = [
        await register(client, skilled(name, "x")) for name in ("writer", "listener", "outsider")
    ]
    subscribed = await client.post(
        f"/agents/{listener}/subscriptions", json={"prefixes": ["proj."], "keys": ["exact"]}
    )
    assert subscribed.json()["subscriptions"] == ["exact", "proj.*"]
    await client.post(f"/agents/{outsider}/subscriptions", json={"patterns": ["proj.*"]})
    await client.post(f"/agents/{writer}/subscriptions", json={"patterns": ["*"]})
    listening = await inboxes(hub, listener)
    outside = await inboxes(hub, outsider)
    own = await inboxes(hub, writer)

    await put(client, "proj.a", value=1, agent_id=writer, readers=[listener])
    await put(client, "proj.a", value=2, agent_id=writer)
    await put(client, "exact", value="e", agent_id=writer)
    await put(client, "other", value="o", agent_id=writer)
    await client.delete("/memory/proj.a", params={"agent_id": writer})

    await wait_for(
        lambda: len(listening.of_type("inbox.memory_updated")) >= 4,
        timeout=15,
        what="the listener's notifications",
    )
    heard = [(i.key, i.version, i.deleted) for i in listening.of_type("inbox.memory_updated")]
    assert sorted(heard) == [
        ("exact", 1, False),
        ("proj.a", 1, False),
        ("proj.a", 2, False),
        (
            "proj.a",
            2,
            True,
        ),
    ]
    # One key's notifications come in the order of its versions.
    assert [h for h in heard if h[0] == "proj.a"] == [
        ("proj.a", 1, False),
        ("proj.a", 2, False),
        ("proj.a", 2, True),
    ]
    assert all(i.updated_by == writer for i in listening.of_type("inbox.memory_updated"))
    # The outsider may not read proj.a: it hears nothing of it. The writer hears nothing
    # of its own writes.
    await asyncio.sleep(0.5)
    assert outside.of_type("inbox.memory_updated") == []
    assert own.of_type("inbox.memory_updated") == []

    gone = await client.request(
        "DELETE", f"/agents/{listener}/subscriptions", json={"patterns": ["proj.*"]}
    )
    assert gone.json()["subscriptions"] == ["exact"]
    assert (
        await client.post(f"/agents/{listener}/subscriptions", json={"patterns": ["bad key*x"]})
    ).status_code == 422
