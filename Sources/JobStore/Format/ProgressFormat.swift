/// A job's progress as stored in `progress` under its id: version (1), attempt (UInt16 LE),
/// fraction (Float64 LE, 0 … 1), reported at (Int64 LE, µs), message (UInt16 LE length +
/// UTF-8; 0 for none), then the seal (``Seal``). docs/FORMAT.md is its prose twin.
enum ProgressFormat {
    static let currentVersion: UInt8 = 1

    static func encode(_ progress: JobProgress) -> [UInt8] {
        let message = progress.message?.utf8 ?? "".utf8
        return [UInt8](unsafeUninitializedCapacity: 21 + message.count + Seal.size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(progress.attempt)
            writer.put(progress.fraction.bitPattern)
            writer.put(progress.at.microseconds)
            writer.put(UInt16(message.count))
            writer.putBytes(message)
            Seal.put(&writer)
            initialized = writer.offset
        }
    }

    /// - Throws: `.newerFormat` for a later version, `.corruptRecord` for bytes that are not a
    ///   progress record or do not match their seal.
    static func decode(_ record: UnsafeRawBufferPointer, id: JobID) throws -> JobProgress {
        let bytes = try Seal.body(of: record, .progress(id), current: currentVersion, sealedSince: 1)
        var reader = RecordReader(bytes: bytes, subject: .progress(id))
        reader.offset = 1
        let attempt = try reader.u16()
        let fraction = Double(bitPattern: try reader.integer(UInt64.self))
        let at = Timestamp(microseconds: try reader.i64())
        let length = Int(try reader.u16())
        let message = length == 0 ? nil : try reader.string(length, "message")
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over after the message") }
        guard fraction.isFinite, (0...1).contains(fraction) else { throw reader.corrupt("its fraction \(fraction) is not within 0 … 1") }
        return JobProgress(fraction: fraction, message: message, attempt: attempt, at: at)
    }
}
