#if canImport(Glibc)
import Glibc
#endif
import LMDB

/// Where one database ends, as one write transaction knows it: a key at least as great as every
/// key in it. A put of a greater key cannot overwrite anything and goes in with `MDB_APPEND`:
/// LMDB goes straight to the last leaf instead of searching the tree, and splits a full last
/// page at its end, so the pages behind stay full. Ids and creation times grow, so the records
/// and creation-time entries of new jobs mostly arrive in key order (measured in
/// docs/BENCHMARKS.md, "Inserts in key order").
///
/// The bound is the database's last key, read at the first put, raised by each put past it. It
/// stays true only while every put of the transaction into the database asks
/// ``options(for:in:of:otherwise:)`` first; a delete only lowers the real end. Were it ever
/// wrong, LMDB would refuse the put (``LMDBError/Code/appendOutOfOrder``), never misplace a key.
/// The key is kept inline (keys of up to 32 bytes; the job keys are 16 and 24), so a write
/// allocates nothing for it; past a longer key, the transaction stops appending.
struct AppendTail {
    private static let capacity = 32
    private var bytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    /// The end key's length; `nil` before the first put, `.max` when it does not fit.
    private var count: Int?
    /// Puts sent with `MDB_APPEND` (for tests).
    private(set) var appends = 0

    /// The options to put `key` into `database` with: `otherwise` and `MDB_APPEND` when `key`
    /// sorts after every key there (it becomes the end), else `otherwise`.
    mutating func options<Key, Value>(
        for key: UnsafeRawBufferPointer, in database: Database<Key, Value>, of txn: WriteTransaction, otherwise: PutOptions = []
    ) throws -> PutOptions {
        if count == nil {
            try txn.withCursor(database) { cursor in
                if try cursor.last() { try cursor.withCurrent { key, _ in remember(key) } } else { count = 0 }
            }
        }
        guard let count, count <= Self.capacity, precedes(key, count) else { return otherwise }
        remember(key)
        guard self.count != .max else { return otherwise }  // too long to keep: no bound any more
        appends += 1
        return otherwise.union(.append)
    }

    /// Whether the kept end sorts before `key` in LMDB's default order: bytes compared as
    /// unsigned, a prefix before its extensions.
    private func precedes(_ key: UnsafeRawBufferPointer, _ count: Int) -> Bool {
        withUnsafeBytes(of: bytes) { end in
            guard let endStart = end.baseAddress, let keyStart = key.baseAddress else { return false }  // an empty key sorts first
            let order = memcmp(endStart, keyStart, min(count, key.count))
            return order < 0 || (order == 0 && count < key.count)
        }
    }

    private mutating func remember(_ key: UnsafeRawBufferPointer) {
        guard key.count <= Self.capacity else {
            count = .max
            return
        }
        withUnsafeMutableBytes(of: &bytes) { end in end.copyMemory(from: key) }
        count = key.count
    }
}
