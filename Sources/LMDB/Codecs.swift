/// Turns values into the bytes LMDB stores and back.
///
/// A codec is a namespace of two static functions, so a ``DatabaseDefinition`` can name its
/// key and value codecs as types and stay a tiny `Sendable` value (heed's `BytesEncode` and
/// `BytesDecode`, redb's `Key` and `Value`).
///
/// `withEncoded` lends the encoding to a closure instead of returning an array, so fixed-size
/// keys are encoded on the stack without an allocation.
public protocol ByteCodec {
    /// The Swift type this codec stores.
    associatedtype Value

    /// Calls `body` with the bytes that represent `value`.
    static func withEncoded<R>(_ value: Value, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R

    /// Decodes a value from stored bytes; throws ``LMDBError/Code/decodingFailed`` (or the
    /// codec's own error) when the bytes are not a valid encoding.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Value
}

/// Raw bytes, stored as they are.
public enum BytesCodec: ByteCodec {
    public static func withEncoded<R>(_ value: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try value.withUnsafeBytes(body)
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] { Array(bytes) }
}

/// A string, stored as its UTF-8 bytes (no terminator).
public enum StringCodec: ByteCodec {
    /// `@inlinable`: specialised where it is called (JobStore builds its meta keys through it at
    /// every commit).
    @inlinable
    public static func withEncoded<R>(_ value: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var copy = value
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> String {
        guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw LMDBError(
                code: .decodingFailed, operation: "StringCodec.decode",
                message: "\(bytes.count) bytes are not valid UTF-8")
        }
        return text
    }
}

/// An unsigned 64-bit integer, stored big-endian, so byte order is numeric order.
public enum UInt64Codec: ByteCodec {
    public static func withEncoded<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withUnsafeBytes(of: value.bigEndian, body)
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> UInt64 {
        guard bytes.count == 8 else {
            throw LMDBError(
                code: .decodingFailed, operation: "UInt64Codec.decode",
                message: "expected 8 bytes, found \(bytes.count)")
        }
        return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }
}

/// A signed 64-bit integer, stored big-endian with the sign bit flipped, so byte order is
/// numeric order (negative numbers sort before positive ones).
public enum Int64Codec: ByteCodec {
    public static func withEncoded<R>(_ value: Int64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withUnsafeBytes(of: (UInt64(bitPattern: value) ^ (1 << 63)).bigEndian, body)
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Int64 {
        Int64(bitPattern: try UInt64Codec.decode(bytes) ^ (1 << 63))
    }
}

/// No value: for index databases whose key says everything. Stores zero bytes
/// (not allowed in a `duplicateSort` database, where values are keys too).
public enum EmptyCodec: ByteCodec {
    public static func withEncoded<R>(_ value: Void, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try body(UnsafeRawBufferPointer(start: nil, count: 0))
    }
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws {}
}
