#!/usr/bin/env python3
"""Writes Tests/JobStoreTests/Fixtures/record-v2-timeline.bin and history-v1.bin by hand,
following docs/FORMAT.md ("Job record, version 2" and "Events") alone, so the tests check the
page against the code."""
import struct, pathlib

out = pathlib.Path(__file__).resolve().parent.parent / "Tests/JobStoreTests/Fixtures"

def event(kind, state, attempts, at, owner=None, until=None, message=None):
    flags = (1 if owner is not None else 0) | (2 if until is not None else 0) | (4 if message is not None else 0)
    data = struct.pack("<BBHqB", kind, state, attempts, at, flags)
    if owner is not None:
        data += owner  # 16 bytes, big-endian
    if until is not None:
        data += struct.pack("<q", until)
    if message is not None:
        text = message.encode()
        data += struct.pack("<H", len(text)) + text
    return data

T = 1_700_000_000_000_000
owner = bytes(range(1, 17))
events = [
    event(1, 1, 0, T),                                              # inserted, pending
    event(2, 2, 1, T + 100_000, owner=owner, until=T + 30_100_000),  # claimed: owner, lease until
    event(6, 1, 1, T + 200_000, until=T + 1_200_000, message="timeout"),  # retried: runs at, error
]
timeline = struct.pack("<IB", 5, len(events)) + b"".join(events)  # 5 dropped, 3 events
# Version 2 = the version-1 fields (the minimal fixture's), the timeline block, its length.
v1 = (out / "record-v1-minimal.bin").read_bytes()
record = bytes([2]) + v1[1:] + timeline + struct.pack("<H", len(timeline))
(out / "record-v2-timeline.bin").write_bytes(record)

job_id = bytes.fromhex("0190a5c41b2e70008123456789abcdef")
history_value = struct.pack("<B", 1) + job_id + events[2]
history_key = struct.pack(">QI", (T + 200_000) ^ (1 << 63), 7)
(out / "history-v1.bin").write_bytes(history_key + history_value)  # key (12 bytes) then value
print(len(record), "and", len(history_key + history_value), "bytes written")
