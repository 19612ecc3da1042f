"""Shared test setup: nothing may reach a hub."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def read_events():
    """Reads a TensorBoard event file (TFRecord frames: length, its CRC, an Event, its CRC) into its
    Events, for the tests of the TensorBoard logger."""
    from tensorboardX.proto.event_pb2 import Event

    def read(path: Path) -> list[Event]:
        data, events, i = path.read_bytes(), [], 0
        while i < len(data):
            n = int.from_bytes(data[i : i + 8], "little")
            events.append(Event.FromString(data[i + 12 : i + 12 + n]))
            i += 12 + n + 4
        return events

    return read
