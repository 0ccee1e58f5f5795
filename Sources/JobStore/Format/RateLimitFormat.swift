/// A queue's rate limit as stored in `meta` under `queue/rate/<queue>` (32 bytes): version (1),
/// reserved (3 bytes), starts (UInt32 LE), period (Int64 LE, µs), tokens (Float64 LE), refilled
/// at (Int64 LE, µs).
extension RateLimit {
    func encode() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(UInt8(1))
            writer.put(UInt8(0))
            writer.put(UInt16(0))
            writer.put(UInt32(starts))
            writer.put(periodMicroseconds)
            writer.put(tokens.bitPattern)
            writer.put(refilledAt.microseconds)
            initialized = writer.offset
        }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, queue: String) throws -> RateLimit {
        var reader = RecordReader(bytes: bytes, subject: .rateLimit(queue))
        guard try reader.u8() == 1 else { throw reader.corrupt("unknown record version") }
        _ = try reader.u8()
        _ = try reader.u16()
        let starts = Int(try reader.integer(UInt32.self))
        let period = try reader.i64()
        let tokens = Double(bitPattern: try reader.integer(UInt64.self))
        let refilledAt = Timestamp(microseconds: try reader.i64())
        guard reader.offset == bytes.count, starts > 0, period > 0, tokens.isFinite else { throw reader.corrupt("not a rate limit") }
        return RateLimit(starts: starts, period: .microseconds(period), tokens: tokens, refilledAt: refilledAt)
    }
}
