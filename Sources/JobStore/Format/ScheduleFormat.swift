import JobCore

/// The schedule record codec: every byte of a periodic job's registration, in this one file.
/// docs/FORMAT.md is its prose twin.
///
/// Stored in `meta` under `schedule/<name>`:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | record version (2; 1 keeps no job and has no seal) |
/// | 1  | 1 | missed-tick policy: 0 skip, 1 run the last missed once |
/// | 2  | 1 | job flags: bit 0 the job is kept, 1 tenant, 2 unique key, 3 timeout, 4 headers (version 1: 0) |
/// | 3  | 1 | the job's priority (0 when none is kept; version 1: 0) |
/// | 4  | 8 | last tick enqueued (Int64 LE, µs; `Int64.min` if none yet) |
/// | 12 | 8 | next tick (Int64 LE, µs; `Int64.min` if none) |
/// | 20 | 8 | updatedAt (Int64 LE, µs) |
/// | 28 | … | timing (UInt8 length + UTF-8: a cron expression, or `every <µs>µs`), time zone (UInt8 length + UTF-8), queue (UInt8 length + UTF-8), job name (UInt8 length + UTF-8) |
/// | …  | … | version 2, the job kept (bit 0): max attempts (UInt16 LE), [tenant (UInt8 length + UTF-8)], [unique key (UInt8 length + UTF-8)], payload (UInt32 LE length + bytes), [timeout (Int64 LE, µs)], [headers, as in a job record]; then the seal (CRC32C of every byte before it, UInt32 LE) |
///
/// The job's name and queue are the record's; its run-at, id and creation time are a tick's
/// or the store's, so not kept.
enum ScheduleFormat {
    static let currentVersion: UInt8 = 2

    enum Flag {
        static let job: UInt8 = 1 << 0
        static let tenant: UInt8 = 1 << 1
        static let uniqueKey: UInt8 = 1 << 2
        static let timeout: UInt8 = 1 << 3
        static let headers: UInt8 = 1 << 4
        static let known: UInt8 = 0b1_1111
    }

    static func encode(_ schedule: ScheduleRecord) -> [UInt8] {
        let texts = [schedule.timing, schedule.timeZone, schedule.queue, schedule.jobName]
        var size = 28 + texts.reduce(0) { $0 + 1 + $1.utf8.count } + Seal.size
        var flags: UInt8 = 0
        if let job = schedule.job {
            flags |= Flag.job
            size += 2 + 4 + job.payload.count + RecordWriter.headersSize(job.headers)
            if let tenant = job.tenant { (flags, size) = (flags | Flag.tenant, size + 1 + tenant.utf8.count) }
            if let key = job.uniqueKey { (flags, size) = (flags | Flag.uniqueKey, size + 1 + key.utf8.count) }
            if job.timeout != nil { (flags, size) = (flags | Flag.timeout, size + 8) }
            if !job.headers.isEmpty { flags |= Flag.headers }
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(schedule.missedTicks.rawValue)
            writer.put(flags)
            writer.put(schedule.job?.priority ?? 0)
            writer.put(schedule.lastTick?.microseconds ?? .min)
            writer.put(schedule.nextTick?.microseconds ?? .min)
            writer.put(schedule.updatedAt.microseconds)
            for text in texts { writer.putShort(text.utf8) }
            if let job = schedule.job {
                writer.put(job.maxAttempts)
                if let tenant = job.tenant { writer.putShort(tenant.utf8) }
                if let key = job.uniqueKey { writer.putShort(key.utf8) }
                writer.putLong(job.payload)
                if let timeout = job.timeout { writer.put(timeout.wholeMicroseconds) }
                writer.putHeaders(job.headers)
            }
            Seal.put(&writer)
            initialized = writer.offset
        }
    }

    static func decode(_ record: UnsafeRawBufferPointer, name: String) throws -> ScheduleRecord {
        let version = record.first ?? 0
        if version > currentVersion {
            throw JobStoreError(
                .newerFormat, "schedule '\(name)' is of record version \(version); this program reads versions 1 and 2",
                hint: "Use a newer version of JobStore")
        }
        let bytes = version >= 2 ? try Seal.open(record, .schedule(name)) : record
        var reader = RecordReader(bytes: bytes, subject: .schedule(name))
        if version == 0 { throw record.isEmpty ? reader.corrupt("it is empty") : reader.corrupt("record version 0 does not exist") }
        _ = try reader.u8()
        let policy = try reader.u8()
        guard let missed = MissedTickPolicy(rawValue: policy) else { throw reader.corrupt("missed-tick policy \(policy) is unknown") }
        let flags = try reader.u8()
        let priority = try reader.u8()
        if version == 1, flags != 0 || priority != 0 { throw reader.corrupt("its reserved bytes are not 0") }
        if flags & ~Flag.known != 0 { throw reader.corrupt("unknown job flag bits \(flags)") }
        if flags & Flag.job == 0, flags != 0 || priority != 0 { throw reader.corrupt("it keeps no job but has job flags \(flags) or priority \(priority)") }
        func time(_ value: Int64) -> Timestamp? { value == .min ? nil : Timestamp(microseconds: value) }
        let last = time(try reader.i64())
        let next = time(try reader.i64())
        let updatedAt = Timestamp(microseconds: try reader.i64())
        let timing = try reader.shortString("timing")
        let timeZone = try reader.shortString("time zone")
        let queue = try reader.shortString("queue")
        let jobName = try reader.shortString("job name")
        var job: NewJob?
        if flags & Flag.job != 0 {
            let maxAttempts = try reader.u16()
            let tenant = flags & Flag.tenant != 0 ? try reader.shortString("tenant") : nil
            let uniqueKey = flags & Flag.uniqueKey != 0 ? try reader.shortString("unique key") : nil
            let payload = try reader.longBytes("payload")
            let timeout = flags & Flag.timeout != 0 ? Duration.microseconds(try reader.i64()) : nil
            let headers = flags & Flag.headers != 0 ? try reader.headers() : [:]
            job = NewJob(
                name: jobName, queue: queue, payload: payload, priority: priority, maxAttempts: maxAttempts, tenant: tenant,
                uniqueKey: uniqueKey, timeout: timeout, headers: headers)
        }
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over") }
        return ScheduleRecord(
            name: name, timing: timing, timeZone: timeZone, queue: queue, jobName: jobName, missedTicks: missed,
            lastTick: last, nextTick: next, updatedAt: updatedAt, job: job)
    }
}
