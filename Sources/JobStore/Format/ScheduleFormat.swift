/// The schedule record codec: every byte of a periodic job's registration, in this one file.
/// docs/FORMAT.md is its prose twin.
///
/// Stored in `meta` under `schedule/<name>`:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | record version (1) |
/// | 1  | 1 | missed-tick policy: 0 skip, 1 run the last missed once |
/// | 2  | 2 | reserved (0) |
/// | 4  | 8 | last tick enqueued (Int64 LE, µs; `Int64.min` if none yet) |
/// | 12 | 8 | next tick (Int64 LE, µs; `Int64.min` if none) |
/// | 20 | 8 | updatedAt (Int64 LE, µs) |
/// | 28 | … | timing (UInt8 length + UTF-8: a cron expression, or `every <µs>µs`), time zone (UInt8 length + UTF-8), queue (UInt8 length + UTF-8), job name (UInt8 length + UTF-8) |
enum ScheduleFormat {
    static let currentVersion: UInt8 = 1

    static func encode(_ schedule: ScheduleRecord) -> [UInt8] {
        let texts = [schedule.timing, schedule.timeZone, schedule.queue, schedule.jobName]
        let size = 28 + texts.reduce(0) { $0 + 1 + $1.utf8.count }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(schedule.missedTicks.rawValue)
            writer.put(UInt16(0))
            writer.put(schedule.lastTick?.microseconds ?? .min)
            writer.put(schedule.nextTick?.microseconds ?? .min)
            writer.put(schedule.updatedAt.microseconds)
            for text in texts { writer.putShort(text.utf8) }
            initialized = writer.offset
        }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> ScheduleRecord {
        var reader = RecordReader(bytes: bytes, subject: .schedule(name))
        let version = try reader.u8()
        if version != currentVersion {
            throw version > currentVersion
                ? JobStoreError(.newerFormat, "schedule '\(name)' is of record version \(version); this program reads version 1", hint: "Use a newer version of JobStore")
                : reader.corrupt("record version \(version) does not exist")
        }
        let policy = try reader.u8()
        guard let missed = MissedTickPolicy(rawValue: policy) else { throw reader.corrupt("missed-tick policy \(policy) is unknown") }
        _ = try reader.u16()
        func time(_ value: Int64) -> Timestamp? { value == .min ? nil : Timestamp(microseconds: value) }
        let last = time(try reader.i64())
        let next = time(try reader.i64())
        let updatedAt = Timestamp(microseconds: try reader.i64())
        let timing = try reader.shortString("timing")
        let timeZone = try reader.shortString("time zone")
        let queue = try reader.shortString("queue")
        let jobName = try reader.shortString("job name")
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over") }
        return ScheduleRecord(
            name: name, timing: timing, timeZone: timeZone, queue: queue, jobName: jobName, missedTicks: missed,
            lastTick: last, nextTick: next, updatedAt: updatedAt)
    }
}
