/// A scheduler's heartbeat as stored in `workers` under its id: version (1), pid (Int32 LE),
/// started at, beat at (Int64 LE µs each), interval (Int64 LE µs), concurrency (UInt16 LE), host
/// (UInt8 length + UTF-8, may be empty), queue count (UInt8) and each queue (UInt8 length +
/// UTF-8), running-job count (UInt16 LE) and each job: id (16, big-endian, as in keys), since
/// (Int64 LE µs), queue and name (each UInt8 length + UTF-8); then the seal (``Seal``).
/// docs/FORMAT.md is its prose twin.
enum WorkerFormat {
    static let currentVersion: UInt8 = 1

    /// The record of `worker`, which must be ``WorkerRecord/bounded()``.
    static func encode(_ worker: WorkerRecord) -> [UInt8] {
        let host = worker.host.utf8
        let queues = worker.queues.map(\.utf8)
        let size = 35 + host.count + 1 + queues.reduce(0) { $0 + 1 + $1.count } + 2
            + worker.running.reduce(0) { $0 + 26 + $1.queue.utf8.count + $1.name.utf8.count } + Seal.size
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(worker.pid)
            writer.put(worker.startedAt.microseconds)
            writer.put(worker.beatAt.microseconds)
            writer.put(worker.interval.wholeMicroseconds)
            writer.put(UInt16(worker.concurrency))
            writer.putShort(host)
            writer.put(UInt8(queues.count))
            for queue in queues { writer.putShort(queue) }
            writer.put(UInt16(worker.running.count))
            for job in worker.running {
                writer.put128(job.id.high, job.id.low)
                writer.put(job.since.microseconds)
                writer.putShort(job.queue.utf8)
                writer.putShort(job.name.utf8)
            }
            Seal.put(&writer)
            initialized = writer.offset
        }
    }

    /// - Throws: `.newerFormat` for a later version, `.corruptRecord` for bytes that are not a
    ///   heartbeat record or do not match their seal.
    static func decode(_ record: UnsafeRawBufferPointer, id: OwnerToken) throws -> WorkerRecord {
        let bytes = try Seal.body(of: record, .worker(id), current: currentVersion, sealedSince: 1)
        var reader = RecordReader(bytes: bytes, subject: .worker(id))
        reader.offset = 1
        let pid = try reader.integer(Int32.self)
        let startedAt = Timestamp(microseconds: try reader.i64())
        let beatAt = Timestamp(microseconds: try reader.i64())
        let interval = try reader.i64()
        guard interval > 0 else { throw reader.corrupt("its interval is \(interval) µs") }
        let concurrency = Int(try reader.u16())
        let host = try reader.string(Int(try reader.u8()), "host")
        var queues: [String] = []
        for _ in 0..<Int(try reader.u8()) { queues.append(try reader.shortString("queue")) }
        var running: [WorkerRecord.RunningJob] = []
        for _ in 0..<Int(try reader.u16()) {
            let (high, low) = try reader.u128()
            let since = Timestamp(microseconds: try reader.i64())
            let queue = try reader.shortString("running job's queue")
            let name = try reader.shortString("running job's name")
            running.append(WorkerRecord.RunningJob(id: JobID(high: high, low: low), queue: queue, name: name, since: since))
        }
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over after the running jobs") }
        return WorkerRecord(
            id: id, host: host, pid: pid, startedAt: startedAt, beatAt: beatAt, interval: .microseconds(interval),
            concurrency: concurrency, queues: queues, running: running)
    }
}
