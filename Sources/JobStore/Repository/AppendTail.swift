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
struct AppendTail {
    private var last: [UInt8] = []
    private var known = false
    /// Puts sent with `MDB_APPEND` (for tests).
    private(set) var appends = 0

    /// The options to put `key` into `database` with: `otherwise` and `MDB_APPEND` when `key`
    /// sorts after every key there (it becomes the end), else `otherwise`.
    mutating func options<Key, Value>(
        for key: UnsafeRawBufferPointer, in database: Database<Key, Value>, of txn: WriteTransaction, otherwise: PutOptions = []
    ) throws -> PutOptions {
        if !known {
            last = try txn.withCursor(database) { cursor in try cursor.last() ? try cursor.withCurrent { key, _ in Array(key) } : [] }
            known = true
        }
        // LMDB's default order: bytes compared as unsigned, a prefix before its extensions.
        guard last.lexicographicallyPrecedes(key) else { return otherwise }
        last.removeAll(keepingCapacity: true)
        last.append(contentsOf: key)
        appends += 1
        return otherwise.union(.append)
    }
}
