#!/usr/bin/env python3
"""Writes the record fixtures of Tests/JobStoreTests/Fixtures/ by hand, following
docs/FORMAT.md alone, so the tests check the page against the code: record-v2-timeline.bin and
history-v1.bin ("Job record" and "Events"), record-v3-sealed.bin, pipeline-v2.bin,
step-v2.bin and history-v2.bin ("Seal"), record-v4-headers.bin, progress-v1.bin and worker-v1.bin ("Job
record", version 4: a job's own timeout and its headers; "Progress"; "Workers"), schedule-v1.bin and
schedule-v2.bin ("Schedule record": without and with the job "run now" enqueues)."""
import struct, pathlib

def crc32c(data):
    """CRC32C (Castagnoli): reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

assert crc32c(b"123456789") == 0xE3069283

def sealed(body):
    """A record of a sealing version: its bytes, then their CRC32C as UInt32 LE."""
    return body + struct.pack("<I", crc32c(body))

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

# Version 3 = version 2 with the version byte 3, then the seal.
record_v3 = sealed(bytes([3]) + record[1:])
(out / "record-v3-sealed.bin").write_bytes(record_v3)

# The pipeline and step records of FORMAT.md's example, version 2 (sealed).
time = struct.pack("<q", T)
pipeline = sealed(struct.pack("<BBBBI", 2, 0, 0, 0, 2) + time + time + struct.pack("<q", 0)
                  + struct.pack("<HHHH", 3, 1, 0, 0) + bytes([2]) + b"ci")
(out / "pipeline-v2.bin").write_bytes(pipeline)
step = sealed(struct.pack("<BBH", 2, 0, 0) + job_id + struct.pack("<HHH", 2, 1, 2) + bytes([5]) + b"build")
(out / "step-v2.bin").write_bytes(step)
# The same history entry, version 2 (sealed): the key, then the value.
history_v2 = history_key + sealed(bytes([2]) + job_id + events[2])
(out / "history-v2.bin").write_bytes(history_v2)
# A version-4 record: a pending job "n" of queue "q", payload "{}", run a second after its
# creation, with its own timeout (30 s) and two headers (flags 0x60), by name; no errors, an
# empty timeline.
T4 = 1_700_000_000_000_000
headers = [(b"request-id", b"r-42"), (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
record_v4 = (bytes([4, 1, 0, 0x60]) + struct.pack("<HH", 0, 20) + struct.pack("<qqqq", T4, T4, T4 + 1_000_000, 0)
             + b"\x01n\x01q" + struct.pack("<I", 2) + b"{}" + struct.pack("<q", 30_000_000) + bytes([len(headers)])
             + b"".join(bytes([len(k)]) + k + struct.pack("<H", len(v)) + v for k, v in headers)
             + bytes([0]) + struct.pack("<H", 0))
record_v4 = sealed(record_v4)
(out / "record-v4-headers.bin").write_bytes(record_v4)
# A progress record: attempt 2, 0.375 done, reported at T4 + 5 s, message "copying".
progress = sealed(struct.pack("<BHdqH", 1, 2, 0.375, T4 + 5_000_000, 7) + b"copying")
(out / "progress-v1.bin").write_bytes(progress)
# A scheduler's heartbeat: pid 4711, started at T4, beat 10 s later, every 5 s, 8 handlers, host
# "build-1", queue "mail", running job_id ("send", of queue mail) since T4 + 7 s.
worker = sealed(struct.pack("<Biqqq", 1, 4711, T4, T4 + 10_000_000, 5_000_000) + struct.pack("<H", 8) + bytes([7]) + b"build-1"
                + bytes([1, 4]) + b"mail" + struct.pack("<H", 1) + job_id + struct.pack("<q", T4 + 7_000_000)
                + bytes([4]) + b"mail" + bytes([4]) + b"send")
(out / "worker-v1.bin").write_bytes(worker)
# Schedule records. Version 1: run-once, last tick T4, next T4 + 1 h, updated T4 + 1 s, every
# hour, UTC, queue mail, job digest; no job kept, no seal.
schedule_texts = lambda timing, zone: b"".join(bytes([len(t)]) + t for t in [timing, zone, b"mail", b"digest"])
schedule_v1 = (struct.pack("<BBH", 1, 1, 0) + struct.pack("<qqq", T4, T4 + 3_600_000_000, T4 + 1_000_000)
               + schedule_texts(b"every 3600000000\xc2\xb5s", b"UTC"))
(out / "schedule-v1.bin").write_bytes(schedule_v1)
# Version 2: skip, no tick yet, next T4 + 1 h, cron "0 7 * * *" in Europe/Paris; the job kept
# (flags: job, tenant, timeout, headers), priority 5, 3 attempts, tenant acme, payload
# {"to":"all"}, timeout 60 s, header trace = x; sealed.
schedule_v2 = sealed(struct.pack("<BBBB", 2, 0, 0b11011, 5) + struct.pack("<qqq", -2**63, T4 + 3_600_000_000, T4 + 1_000_000)
                     + schedule_texts(b"0 7 * * *", b"Europe/Paris") + struct.pack("<H", 3) + bytes([4]) + b"acme"
                     + struct.pack("<I", 12) + b'{"to":"all"}' + struct.pack("<q", 60_000_000)
                     + bytes([1, 5]) + b"trace" + struct.pack("<H", 1) + b"x")
(out / "schedule-v2.bin").write_bytes(schedule_v2)
for name, data in [("record-v2-timeline.bin", record), ("history-v1.bin", history_key + history_value),
                   ("record-v3-sealed.bin", record_v3), ("pipeline-v2.bin", pipeline), ("step-v2.bin", step),
                   ("history-v2.bin", history_v2), ("record-v4-headers.bin", record_v4), ("progress-v1.bin", progress),
                   ("worker-v1.bin", worker), ("schedule-v1.bin", schedule_v1), ("schedule-v2.bin", schedule_v2)]:
    print(f"{name}: {len(data)} bytes, ends {data[-4:].hex(' ')}")
