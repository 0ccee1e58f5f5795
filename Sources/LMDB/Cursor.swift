import CLMDB

/// A cursor on one database, valid inside the closure of ``Transaction/withCursor(_:_:)``.
///
/// Positioning methods return whether the cursor now stands on an entry. Read the entry as
/// owned values with ``key()`` and ``value()``, or borrow its bytes with ``withCurrent(_:)``.
///
/// ```swift
/// try txn.withCursor(db) { cursor in
///     var more = try cursor.seek(atLeast: start)
///     while more {
///         print(try cursor.key(), try cursor.value())
///         more = try cursor.next()
///     }
/// }
/// ```
public final class Cursor<Key: ByteCodec, Value: ByteCodec> {
    let transaction: Transaction
    let database: Database<Key, Value>
    // Used by one thread at a time, read and written on every row: no dynamic exclusivity
    // checks (see Transaction).
    @exclusivity(unchecked) private var pointer: OpaquePointer?
    @exclusivity(unchecked) private(set) var currentKey = MDB_val()
    @exclusivity(unchecked) private(set) var currentValue = MDB_val()
    @exclusivity(unchecked) private var isPositioned = false
    @exclusivity(unchecked) private var generation: UInt64

    init(transaction: Transaction, database: Database<Key, Value>, handle: OpaquePointer) {
        self.transaction = transaction
        self.database = database
        self.pointer = handle
        self.generation = transaction.writeGeneration
    }

    /// Closes the cursor while its transaction is still open (both kinds allow that; a
    /// read-transaction cursor must be closed explicitly, and closing one after its write
    /// transaction ended would free it twice).
    func close() {
        if let pointer { mdb_cursor_close(pointer) }
        pointer = nil
    }

    var handle: OpaquePointer {
        get throws {
            guard let pointer, transaction.pointer != nil else {
                throw LMDBError(
                    code: .transactionEnded, operation: "cursor", database: database.name,
                    message: "the cursor was used after its closure returned")
            }
            return pointer
        }
    }

    /// Moves the cursor with `operation`; with `key`, passes it as the operation's key.
    @discardableResult
    func position(_ operation: MDB_cursor_op, key: [UInt8]? = nil, value: [UInt8]? = nil) throws -> Bool {
        let cursor = try handle
        var keyValue = MDB_val()
        var dataValue = MDB_val()
        let rc: Int32
        if key == nil && value == nil {
            // The per-row step of every iteration (next, previous, first, last): no bytes to
            // lend, so no closures (they were most of a range scan's cost).
            rc = mdb_cursor_get(cursor, &keyValue, &dataValue, operation)
        } else {
            rc = try withOptionalBytes(key) { keyBytes in
                try withOptionalBytes(value) { valueBytes in
                    if let keyBytes {
                        try transaction.checkKey(keyBytes, database, operation: "mdb_cursor_get")
                        keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                    }
                    if let valueBytes {
                        dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                    }
                    return mdb_cursor_get(cursor, &keyValue, &dataValue, operation)
                }
            }
        }
        if rc == MDB_NOTFOUND {
            isPositioned = false
            return false
        }
        try check(rc, "mdb_cursor_get", database: database.name, path: transaction.environment.path)
        // MDB_SET positions without returning the key; the input key is the key.
        currentKey = keyValue
        currentValue = dataValue
        // Other operations leave the key (or value) pointing at our input bytes, or unset.
        let returnsBoth = operation != MDB_SET && operation != MDB_GET_BOTH && operation != MDB_GET_BOTH_RANGE
        if !returnsBoth || currentKey.mv_data == nil {
            try check(mdb_cursor_get(cursor, &currentKey, &currentValue, MDB_GET_CURRENT), "mdb_cursor_get", database: database.name)
        }
        generation = transaction.writeGeneration
        isPositioned = true
        return true
    }

    private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        guard let bytes else { return try body(nil) }
        return try bytes.withUnsafeBytes { try body($0) }
    }

    private func encode<C: ByteCodec>(_ value: C.Value, _ codec: C.Type) throws -> [UInt8] {
        try C.withEncoded(value) { Array($0) }
    }

    /// Moves to the first entry.
    @discardableResult public func first() throws -> Bool { try position(MDB_FIRST) }
    /// Moves to the last entry (the last duplicate of the last key).
    @discardableResult public func last() throws -> Bool { try position(MDB_LAST) }
    /// Moves to the next entry (the next duplicate, or the next key's first value).
    @discardableResult public func next() throws -> Bool { try position(MDB_NEXT) }
    /// Moves to the previous entry.
    @discardableResult public func previous() throws -> Bool { try position(MDB_PREV) }
    /// Moves to the first entry of the next key, skipping the current key's duplicates.
    @discardableResult public func nextKey() throws -> Bool { try position(MDB_NEXT_NODUP) }
    /// Moves to the last entry of the previous key.
    @discardableResult public func previousKey() throws -> Bool { try position(MDB_PREV_NODUP) }
    /// Moves to `key` exactly (its first duplicate); false if absent.
    @discardableResult public func seek(to key: Key.Value) throws -> Bool {
        try position(MDB_SET_KEY, key: encode(key, Key.self))
    }
    /// Moves to the first key ≥ `key`; false if there is none.
    @discardableResult public func seek(atLeast key: Key.Value) throws -> Bool {
        try position(MDB_SET_RANGE, key: encode(key, Key.self))
    }
    /// Moves to the first key that starts with `prefix` (byte-ordered databases); false if there is none.
    @discardableResult public func seek(prefix: [UInt8]) throws -> Bool {
        guard try position(MDB_SET_RANGE, key: prefix) else { return false }
        let key = UnsafeRawBufferPointer(start: currentKey.mv_data, count: currentKey.mv_size)
        if key.count >= prefix.count && key.prefix(prefix.count).elementsEqual(prefix) { return true }
        isPositioned = false
        return false
    }

    // Duplicates (duplicateSort databases)

    /// Moves to the exact pair `key`–`value`; false if absent.
    @discardableResult public func seek(to key: Key.Value, value: Value.Value) throws -> Bool {
        try position(MDB_GET_BOTH, key: encode(key, Key.self), value: encode(value, Value.self))
    }
    /// Moves to `key`'s first value ≥ `value`; false if there is none.
    @discardableResult public func seek(to key: Key.Value, valueAtLeast value: Value.Value) throws -> Bool {
        try position(MDB_GET_BOTH_RANGE, key: encode(key, Key.self), value: encode(value, Value.self))
    }
    /// Moves to the current key's first value.
    @discardableResult public func firstDuplicate() throws -> Bool { try position(MDB_FIRST_DUP) }
    /// Moves to the current key's last value.
    @discardableResult public func lastDuplicate() throws -> Bool { try position(MDB_LAST_DUP) }
    /// Moves to the current key's next value; false at its last.
    @discardableResult public func nextDuplicate() throws -> Bool { try position(MDB_NEXT_DUP) }
    /// Moves to the current key's previous value; false at its first.
    @discardableResult public func previousDuplicate() throws -> Bool { try position(MDB_PREV_DUP) }

    /// How many values the current key has (`mdb_cursor_count`; 1 outside `duplicateSort`).
    public func duplicateCount() throws -> Int {
        try requirePosition()
        guard database.isDuplicateSort else { return 1 }
        var count = 0
        try check(mdb_cursor_count(try handle, &count), "mdb_cursor_count", database: database.name)
        return count
    }

    // Reading the current entry

    private func requirePosition() throws {
        guard isPositioned else {
            throw LMDBError(
                code: .notFound, operation: "cursor", database: database.name,
                message: "the cursor does not stand on an entry", hint: "Check what the positioning call returned")
        }
        if generation != transaction.writeGeneration {
            // A write invalidated the cached pointers: fetch the current entry again.
            try check(
                mdb_cursor_get(try handle, &currentKey, &currentValue, MDB_GET_CURRENT), "mdb_cursor_get",
                database: database.name)
            generation = transaction.writeGeneration
        }
    }

    /// The current key, decoded into an owned value.
    public func key() throws -> Key.Value {
        try requirePosition()
        return try Key.decode(UnsafeRawBufferPointer(start: currentKey.mv_data, count: currentKey.mv_size))
    }

    /// The current value, decoded into an owned value.
    public func value() throws -> Value.Value {
        try requirePosition()
        return try Value.decode(UnsafeRawBufferPointer(start: currentValue.mv_data, count: currentValue.mv_size))
    }

    /// Lends the current key and value bytes to `body`; valid only inside it, and no write may
    /// happen inside it.
    public func withCurrent<R>(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R {
        try requirePosition()
        return try transaction.borrow {
            try body(
                UnsafeRawBufferPointer(start: currentKey.mv_data, count: currentKey.mv_size),
                UnsafeRawBufferPointer(start: currentValue.mv_data, count: currentValue.mv_size))
        }
    }

    /// Deletes the current entry (with `allDuplicates`, every value of the current key).
    /// A following ``next()`` moves to the entry after the deleted one.
    public func deleteCurrent(allDuplicates: Bool = false) throws {
        guard let write = transaction as? WriteTransaction else {
            throw LMDBError(
                code: .readOnly, operation: "mdb_cursor_del", database: database.name,
                message: "the cursor belongs to a read-only transaction")
        }
        try requirePosition()
        try write.deleteAtCursor(try handle, allDuplicates: allDuplicates, database: database.name)
    }
}

extension WriteTransaction {
    func deleteAtCursor(_ cursor: OpaquePointer, allDuplicates: Bool, database: String) throws {
        if borrowDepth > 0 {
            throw LMDBError(
                code: .borrowedBytesInScope, operation: "mdb_cursor_del", database: database, path: environment.path,
                message: "a write while bytes borrowed from the map are in scope would invalidate them")
        }
        writeGeneration &+= 1
        let rc = mdb_cursor_del(cursor, allDuplicates ? UInt32(MDB_NODUPDATA) : 0)
        if rc == MDB_MAP_FULL { markMapFull() }
        try check(rc, "mdb_cursor_del", database: database, path: environment.path)
    }
}
