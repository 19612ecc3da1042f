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
    Events, checking every CRC, for the tests of the TensorBoard logger."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    def read(path: Path) -> list[Event]:
        data, events, i = path.read_bytes(), [], 0
        while i < len(data):
            header, n = data[i : i + 8], int.from_bytes(data[i : i + 8], "little")
            body = data[i + 12 : i + 12 + n]
            assert int.from_bytes(data[i + 8 : i + 12], "little") == masked_crc32c(header)
            assert int.from_bytes(data[i + 12 + n : i + 16 + n], "little") == masked_crc32c(body)
            events.append(Event.FromString(body))
            i += 16 + n
        return events

    return read
