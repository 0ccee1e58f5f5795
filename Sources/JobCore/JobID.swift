import Locking
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A job's identity: 16 bytes laid out like a UUIDv7, so the byte order of ids is creation order.
///
/// Layout (big-endian): 48 bits of Unix milliseconds · 4 bits version (7) · 12 bits counter
/// (the index of the id within its millisecond) · 2 bits variant (0b10) · 62 random bits.
/// Printed and parsed as a UUID string: `0190a5c4-1b2e-7000-8123-456789abcdef`.
public struct JobID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The first 8 bytes, big-endian (milliseconds, version, counter).
    public let high: UInt64
    /// The last 8 bytes, big-endian (variant and random bits).
    public let low: UInt64

    /// An id from its two big-endian halves.
    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An id built from its parts: Unix milliseconds (48 bits), a counter within the millisecond
    /// (12 bits) and 62 random bits.
    public init(milliseconds: UInt64, counter: UInt16, random: UInt64) {
        high = (milliseconds & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | UInt64(counter & 0x0FFF)
        low = 0x8000_0000_0000_0000 | (random & 0x3FFF_FFFF_FFFF_FFFF)
    }

    /// Reads an id from 16 stored bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// Parses the UUID form (36 characters with dashes, or 32 hex digits).
    ///
    /// - Throws: ``JobStoreError`` `.invalidID` saying what is wrong with the text.
    public init(parsing text: String) throws {
        let hex = text.filter { $0 != "-" }
        let dashesRight = text.count == 32 || (text.count == 36 && [8, 13, 18, 23].allSatisfy {
            text[text.index(text.startIndex, offsetBy: $0)] == "-"
        })
        guard dashesRight, hex.count == 32, let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16)
        else {
            throw JobStoreError(
                .invalidID, "'\(text)' is not a job id",
                hint: "A job id is a UUID such as 0190a5c4-1b2e-7000-8123-456789abcdef")
        }
        self.high = high
        self.low = low
    }

    /// The Unix milliseconds in the id.
    public var milliseconds: UInt64 { high >> 16 }

    /// The 16 bytes, big-endian, lent to `body`.
    @inlinable public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { try body($0) }
    }

    /// Writes the 16 bytes at `offset` of `buffer`.
    package func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBytes(of: high.bigEndian, toByteOffset: offset, as: UInt64.self)
        buffer.storeBytes(of: low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
    }

    /// The UUID string, lowercase.
    public var description: String {
        let hex = String(high, radix: 16).leftPadded(to: 16) + String(low, radix: 16).leftPadded(to: 16)
        var text = ""
        for (index, character) in hex.enumerated() {
            if [8, 12, 16, 20].contains(index) { text.append("-") }
            text.append(character)
        }
        return text
    }

    @inlinable public static func < (a: JobID, b: JobID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// The all-zero id, which no job has: the history records queue events under it.
    public static let none = JobID(high: 0, low: 0)

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The smallest id of a millisecond (for range bounds).
    static func lowest(milliseconds: UInt64) -> JobID { JobID(high: milliseconds << 16, low: 0) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Makes time-ordered ids: strictly increasing within this process, also when several are made
/// in one millisecond (the 12-bit counter; past 4,096 in one millisecond the next millisecond is
/// borrowed).
public final class JobIDGenerator: Sendable {
    private let state = Lock<(milliseconds: UInt64, counter: UInt16)>((0, 0))

    /// A generator.
    public init() {}

    /// A new id at `milliseconds` (default: now), greater than every id this generator made before.
    public func next(milliseconds: UInt64 = UInt64(Timestamp.now.microseconds / 1000)) -> JobID {
        let (ms, counter) = state.withLock { state -> (UInt64, UInt16) in
            if milliseconds > state.milliseconds {
                state = (milliseconds, 0)
            } else if state.counter < 0x0FFF {
                state.counter += 1
            } else {
                state = (state.milliseconds + 1, 0)
            }
            return state
        }
        var random: UInt64 = 0
        withUnsafeMutableBytes(of: &random) { buffer in
            var generator = SystemRandomNumberGenerator()
            buffer.storeBytes(of: generator.next(), as: UInt64.self)
        }
        return JobID(milliseconds: ms, counter: counter, random: random)
    }
}
