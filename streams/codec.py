"""The Faust codec for Kolony's pydantic models: one wrapper, one registration per type."""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs
from pydantic import TypeAdapter

from schemas.apps import APP_ENTRY
from schemas.memory import MEMORY_ENTRY
from schemas.messages import MESSAGING_STATE
from schemas.registry import AGENT_EVENT, AGENT_STATE
from schemas.tasks import TASK_ENTRY


class PydanticCodec(codecs.Codec):
    """Serialises with a pydantic ``TypeAdapter``: the bytes are the protocol's JSON."""

    def __init__(self, adapter: TypeAdapter[Any], **kwargs: Any) -> None:
        self._adapter = adapter
        super().__init__(**kwargs)

    def _dumps(self, obj: Any) -> bytes:
        return self._adapter.dump_json(obj, exclude_none=True)

    def _loads(self, s: bytes) -> Any:
        return self._adapter.validate_json(s)

    def clone(self, *children: Any) -> PydanticCodec:
        return type(self)(self._adapter, children=children)


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """A topic of raw bytes: Kolony (de)serialises its JSON itself, to turn bad input into
    rejection events rather than Faust decode errors."""
    return app.topic(
        name,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


AGENT_STATE_CODEC = "kolony.agent_state"
AGENT_EVENT_CODEC = "kolony.agent_event"
TASK_ENTRY_CODEC = "kolony.task_entry"
MESSAGING_STATE_CODEC = "kolony.messaging_state"
MEMORY_ENTRY_CODEC = "kolony.memory_entry"
APP_ENTRY_CODEC = "kolony.app_entry"

codecs.register(AGENT_STATE_CODEC, PydanticCodec(AGENT_STATE))
codecs.register(AGENT_EVENT_CODEC, PydanticCodec(AGENT_EVENT))
codecs.register(TASK_ENTRY_CODEC, PydanticCodec(TASK_ENTRY))
codecs.register(MESSAGING_STATE_CODEC, PydanticCodec(MESSAGING_STATE))
codecs.register(MEMORY_ENTRY_CODEC, PydanticCodec(MEMORY_ENTRY))
codecs.register(APP_ENTRY_CODEC, PydanticCodec(APP_ENTRY))
