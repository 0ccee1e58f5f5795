import CLMDB

/// What reading transactions (read-only and write) share: point reads, borrowed reads,
/// cursors, ranges and statistics.
///
/// A transaction is valid only inside the closure it is handed to; using it afterwards throws
/// ``LMDBError/Code/transactionEnded``. It is not `Sendable`: it belongs to the thread running
/// the closure.
///
/// Values are owned (decoded copies) by default. Borrowed bytes, which point into LMDB's map,
/// are lent only to a closure (``withValue(_:_:_:)``, ``forEach(_:in:reverse:_:)``,
/// ``Cursor/withCurrent(_:)``); writing while they are lent is an error, because a write
/// invalidates them.
public class Transaction {
    /// The environment the transaction belongs to.
    public let environment: Environment
    // The state below is read and written on every row of an iteration. A transaction is used by
    // one thread at a time and no access to these overlaps another, so the dynamic exclusivity
    // checks of class properties (a quarter of a range scan's time) are turned off for them.
    @exclusivity(unchecked) var pointer: OpaquePointer?
    /// How many closures currently hold borrowed bytes.
    @exclusivity(unchecked) @usableFromInline var borrowDepth = 0
    /// Incremented by every write, so cursors know their cached positions are stale.
    @exclusivity(unchecked) var writeGeneration: UInt64 = 0
    /// Set while a nested child transaction is open; the parent may not be used.
    @exclusivity(unchecked) var hasActiveChild = false

    init(environment: Environment, handle: OpaquePointer) {
        self.environment = environment
        self.pointer = handle
    }

    /// The live LMDB handle, or an error if the transaction has ended or has an open child.
    var handle: OpaquePointer {
        get throws {
            guard let pointer else {
                throw LMDBError(
                    code: .transactionEnded, operation: "transaction", path: environment.path,
                    message: "the transaction was used after its closure returned")
            }
            if hasActiveChild {
                throw LMDBError(
                    code: .childTransactionActive, operation: "transaction", path: environment.path,
                    message: "the parent transaction was used while its nested transaction is open")
            }
            return pointer
        }
    }

    /// The transaction's id (`mdb_txn_id`): for a read, the id of the snapshot's commit.
    public var id: Int {
        get throws { mdb_txn_id(try handle) }
    }

    /// Whether this is a read-only transaction.
    public var isReadOnly: Bool { true }

    /// How many writes this transaction has made (puts, deletes, nested transactions begun).
    /// LMDB keeps bytes it returned valid until the transaction's next write: bytes read while
    /// this had a value stay valid as long as it keeps that value.
    public var writeCount: UInt64 { writeGeneration }

    func checkDatabase<Key, Value>(_ database: Database<Key, Value>) throws {
        try checkDatabase(environmentID: database.environmentID, name: database.name)
    }

    func checkDatabase(environmentID: UInt64, name: String) throws {
        if environmentID != environment.id {
            throw LMDBError(
                code: .wrongEnvironment, operation: "transaction", database: name, path: environment.path,
                message: "the database handle belongs to another environment")
        }
    }

    func checkKey<Key, Value>(_ key: UnsafeRawBufferPointer, _ database: Database<Key, Value>, operation: String) throws {
        try checkKey(key, name: database.name, flags: database.flags, operation: operation)
    }

    func checkKey(_ key: UnsafeRawBufferPointer, name: String, flags: DatabaseFlags, operation: String) throws {
        if key.count == 0 || key.count > environment.maxKeySize {
            throw LMDBError(
                code: .invalidKeySize, operation: operation, database: name, path: environment.path,
                message: "a key of \(key.count) bytes; keys must be 1…\(environment.maxKeySize) bytes")
        }
        if flags.contains(.integerKey) && key.count != 4 && key.count != 8 {
            throw LMDBError(
                code: .invalidKeySize, operation: operation, database: name, path: environment.path,
                message: "a key of \(key.count) bytes in an integerKey database; keys must be 4 or 8 bytes")
        }
    }

    // MARK: Point reads

    /// The value stored under `key` (the first duplicate in a `duplicateSort` database), decoded
    /// into an owned value, or `nil` if there is none.
    public func get<Key, Value>(_ database: Database<Key, Value>, _ key: Key.Value) throws -> Value.Value? {
        try withValue(database, key) { bytes in try bytes.map { try Value.decode($0) } }
    }

    /// Lends the bytes stored under `key` (or `nil`) to `body`, straight from LMDB's map.
    ///
    /// The bytes are valid only inside `body`; writing in this transaction inside `body` is an error.
    public func withValue<Key, Value, R>(
        _ database: Database<Key, Value>, _ key: Key.Value, _ body: (UnsafeRawBufferPointer?) throws -> R
    ) throws -> R {
        try Key.withEncoded(key) { keyBytes in try withValue(database, rawKey: keyBytes, body) }
    }

    /// ``withValue(_:_:_:)`` with the key given as its stored bytes (no encoding, no copy).
    @inlinable
    public func withValue<Key, Value, R>(
        _ database: Database<Key, Value>, rawKey keyBytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R
    ) throws -> R {
        // Generic only here, specialised in the caller's module: unspecialised, each of the
        // database's fields was read through its type metadata (a tenth of a page of 100 jobs).
        let value = try value(
            database.handle, environmentID: database.environmentID, name: database.name, flags: database.flags, rawKey: keyBytes)
        return try borrow { try body(value) }
    }

    /// The bytes stored under `keyBytes` in the database `dbi` (`mdb_get`), or `nil`.
    @usableFromInline
    func value(
        _ dbi: MDB_dbi, environmentID: UInt64, name: String, flags: DatabaseFlags, rawKey keyBytes: UnsafeRawBufferPointer
    ) throws -> UnsafeRawBufferPointer? {
        let txn = try handle
        try checkDatabase(environmentID: environmentID, name: name)
        try checkKey(keyBytes, name: name, flags: flags, operation: "mdb_get")
        var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
        var data = MDB_val()
        let rc = mdb_get(txn, dbi, &keyValue, &data)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get", database: name, path: environment.path)
        return UnsafeRawBufferPointer(start: data.mv_data, count: data.mv_size)
    }

    /// Whether `key` is present.
    public func contains<Key, Value>(_ database: Database<Key, Value>, _ key: Key.Value) throws -> Bool {
        try withValue(database, key) { $0 != nil }
    }

    /// Runs `body` while borrowed bytes are lent, so writes can refuse.
    @inlinable
    func borrow<R>(_ body: () throws -> R) rethrows -> R {
        borrowDepth += 1
        defer { borrowDepth -= 1 }
        return try body()
    }

    // MARK: Statistics

    /// The database's statistics as of this transaction (`mdb_stat`).
    public func statistics<Key, Value>(_ database: Database<Key, Value>) throws -> DatabaseStatistics {
        let txn = try handle
        try checkDatabase(database)
        var stat = MDB_stat()
        try check(mdb_stat(txn, database.handle, &stat), "mdb_stat", database: database.name, path: environment.path)
        return DatabaseStatistics(stat)
    }

    /// The number of entries in the database (every duplicate counts), in O(1).
    public func count<Key, Value>(_ database: Database<Key, Value>) throws -> Int {
        try statistics(database).entries
    }

    // MARK: Cursors and ranges

    /// Opens a cursor on `database` for the duration of `body`.
    public func withCursor<Key, Value, R>(_ database: Database<Key, Value>, _ body: (Cursor<Key, Value>) throws -> R) throws -> R {
        let txn = try handle
        try checkDatabase(database)
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, database.handle, &cursor), "mdb_cursor_open", database: database.name, path: environment.path)
        guard let cursor else {
            throw LMDBError(code: .system, operation: "mdb_cursor_open", database: database.name, message: "no cursor returned")
        }
        let wrapper = Cursor(transaction: self, database: database, handle: cursor)
        defer { wrapper.close() }
        return try body(wrapper)
    }

    /// Visits the entries whose keys are in `range`, in key order (or reverse order), lending
    /// each key and value to `body` straight from the map. Return `false` from `body` to stop.
    ///
    /// In a `duplicateSort` database every duplicate is visited. Bounds compare with the
    /// database's own comparison (so `reverseKey` and `integerKey` databases work too).
    public func forEach<Key, Value>(
        _ database: Database<Key, Value>, in range: KeyRange<Key.Value> = .all, reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let lower = try range.lower.map { try EncodedBound($0, Key.self) }
        let upper = try range.upper.map { try EncodedBound($0, Key.self) }
        try iterate(database, lower: lower, upper: upper, reverse: reverse, body)
    }

    /// Visits the entries whose key starts with `prefix` (raw bytes), in key order or reverse.
    /// Only for databases ordered by plain byte comparison (no `reverseKey` or `integerKey`).
    public func forEach<Key, Value>(
        _ database: Database<Key, Value>, prefix: [UInt8], reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        if !database.flags.isDisjoint(with: [.reverseKey, .integerKey]) || prefix.isEmpty {
            throw LMDBError(
                code: .invalidArgument, operation: "forEach(prefix:)", database: database.name, path: environment.path,
                message: prefix.isEmpty ? "the prefix is empty" : "a prefix scan needs a database in plain byte order")
        }
        // The smallest key above every key with the prefix: the prefix with its last non-0xFF byte incremented.
        var successor = prefix
        while let last = successor.last, last == 0xFF { successor.removeLast() }
        if !successor.isEmpty { successor[successor.count - 1] += 1 }
        try iterate(
            database, lower: EncodedBound(bytes: prefix, inclusive: true),
            upper: successor.isEmpty ? nil : EncodedBound(bytes: successor, inclusive: false),
            reverse: reverse, body)
    }

    /// Decoded, owned entries in `range`, at most `limit` of them.
    public func entries<Key, Value>(
        _ database: Database<Key, Value>, in range: KeyRange<Key.Value> = .all, reverse: Bool = false, limit: Int = .max
    ) throws -> [(key: Key.Value, value: Value.Value)] {
        var result: [(key: Key.Value, value: Value.Value)] = []
        guard limit > 0 else { return result }
        try forEach(database, in: range, reverse: reverse) { key, value in
            result.append((try Key.decode(key), try Value.decode(value)))
            return result.count < limit
        }
        return result
    }

    private func iterate<Key, Value>(
        _ database: Database<Key, Value>, lower: EncodedBound?, upper: EncodedBound?, reverse: Bool,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        for bound in [lower, upper].compactMap({ $0 }) {
            try bound.bytes.withUnsafeBytes { try checkKey($0, database, operation: "forEach") }
        }
        try withCursor(database) { cursor in
            let txn = try handle
            func compare(_ key: MDB_val, _ bound: EncodedBound) -> Int32 {
                bound.bytes.withUnsafeBytes { Transaction.order(key, $0, txn: txn, database: database.handle, bytewise: database.ordersBytewise) }
            }
            var found: Bool
            if reverse {
                if let upper {
                    found = try cursor.position(MDB_SET_RANGE, key: upper.bytes)
                    if !found {
                        found = try cursor.position(MDB_LAST)
                    } else {
                        let order = compare(cursor.currentKey, upper)
                        if order == 0 && upper.inclusive {
                            if database.isDuplicateSort { found = try cursor.position(MDB_LAST_DUP) }
                        } else {
                            found = try cursor.position(MDB_PREV)
                        }
                    }
                } else {
                    found = try cursor.position(MDB_LAST)
                }
            } else {
                if let lower {
                    found = try cursor.position(MDB_SET_RANGE, key: lower.bytes)
                    if found && !lower.inclusive && compare(cursor.currentKey, lower) == 0 {
                        found = try cursor.position(MDB_NEXT_NODUP)
                    }
                } else {
                    found = try cursor.position(MDB_FIRST)
                }
            }
            guard found else { return }
            let stop = reverse ? lower : upper
            try borrow {
                try scan(
                    cursor: try cursor.handle, from: cursor.currentKey, cursor.currentValue, reverse: reverse,
                    until: stop, database: database.handle, bytewise: database.ordersBytewise, name: database.name, body)
            }
        }
    }

    /// The per-row loop of every range scan: not generic, so it runs specialised whatever the
    /// database's codecs (through the generic cursor each step cost more than LMDB's own
    /// `mdb_cursor_get`). Visits the entry at `key`–`value`, then each next (or previous) one,
    /// while it is within `bound` and `body` returns true. `bytewise`: the database's
    /// ``Database/ordersBytewise`` (see ``order(_:_:txn:database:bytewise:)``).
    private func scan(
        cursor: OpaquePointer, from key: MDB_val, _ value: MDB_val, reverse: Bool, until bound: EncodedBound?,
        database: MDB_dbi, bytewise: Bool, name: String, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let txn = try handle
        try (bound?.bytes ?? []).withUnsafeBytes { boundBytes in
            let inclusive = bound?.inclusive ?? true
            var key = key, value = value
            while true {
                if bound != nil {
                    let order = Transaction.order(key, boundBytes, txn: txn, database: database, bytewise: bytewise)
                    if reverse ? (order < 0 || (order == 0 && !inclusive)) : (order > 0 || (order == 0 && !inclusive)) {
                        return
                    }
                }
                let keepGoing = try body(
                    UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size),
                    UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
                if !keepGoing { return }
                let rc = mdb_cursor_get(cursor, &key, &value, reverse ? MDB_PREV : MDB_NEXT)
                if rc == MDB_NOTFOUND { return }
                try check(rc, "mdb_cursor_get", database: name, path: environment.path)
            }
        }
    }

    /// How `key` sorts against `bound` in `database` (positive: after it): inline for a database
    /// in LMDB's default order (`bytewise`, ``compareBytes``), else by LMDB's comparison of the
    /// database. Every range scan's positioning and per-row bound check.
    @inline(__always)
    private static func order(
        _ key: MDB_val, _ bound: UnsafeRawBufferPointer, txn: OpaquePointer, database: MDB_dbi, bytewise: Bool
    ) -> Int32 {
        if bytewise, let keyBytes = key.mv_data, let boundBytes = bound.baseAddress {
            return compareBytes(keyBytes, key.mv_size, boundBytes, bound.count)
        }
        var key = key
        var boundValue = MDB_val(mv_size: bound.count, mv_data: UnsafeMutableRawPointer(mutating: bound.baseAddress))
        return mdb_cmp(txn, database, &key, &boundValue)
    }

    /// LMDB's default key order (`mdb_cmp_memn`): the shared prefix's bytes, then the shorter
    /// first. Eight bytes at a time as big-endian integers, inline: a scan's bound check per row
    /// (keys of 20–30 bytes) through `mdb_cmp` and libc's `memcmp` was a quarter of the scan.
    @inline(__always)
    static func compareBytes(_ a: UnsafeRawPointer, _ aCount: Int, _ b: UnsafeRawPointer, _ bCount: Int) -> Int32 {
        let shared = min(aCount, bCount)
        var at = 0
        while at + 8 <= shared {
            let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            if x != y { return x < y ? -1 : 1 }
            at += 8
        }
        while at < shared {
            let x = a.load(fromByteOffset: at, as: UInt8.self), y = b.load(fromByteOffset: at, as: UInt8.self)
            if x != y { return x < y ? -1 : 1 }
            at += 1
        }
        return aCount < bCount ? -1 : aCount > bCount ? 1 : 0
    }

    /// Ends the transaction object (the closure returned): later use throws. Returns the handle.
    func end() -> OpaquePointer? {
        defer { pointer = nil }
        return pointer
    }
}

/// A bound of a key range, already encoded.
struct EncodedBound {
    let bytes: [UInt8]
    let inclusive: Bool

    init(bytes: [UInt8], inclusive: Bool) {
        self.bytes = bytes
        self.inclusive = inclusive
    }

    init<Codec: ByteCodec>(_ bound: KeyRange<Codec.Value>.Bound, _ codec: Codec.Type) throws {
        switch bound {
        case .inclusive(let value): bytes = try Codec.withEncoded(value) { Array($0) }; inclusive = true
        case .exclusive(let value): bytes = try Codec.withEncoded(value) { Array($0) }; inclusive = false
        }
    }
}

/// A range of keys: each bound inclusive, exclusive or absent.
public struct KeyRange<Value> {
    /// One end of a range.
    public enum Bound {
        /// The end includes this key.
        case inclusive(Value)
        /// The end excludes this key.
        case exclusive(Value)
    }
    /// The lower end, or `nil` for the first key.
    public var lower: Bound?
    /// The upper end, or `nil` for the last key.
    public var upper: Bound?

    /// A range between two optional bounds.
    public init(lower: Bound? = nil, upper: Bound? = nil) {
        self.lower = lower
        self.upper = upper
    }

    /// Every key.
    public static var all: KeyRange { KeyRange() }
    /// Keys ≥ `start`.
    public static func from(_ start: Value) -> KeyRange { KeyRange(lower: .inclusive(start)) }
    /// Keys > `start`.
    public static func after(_ start: Value) -> KeyRange { KeyRange(lower: .exclusive(start)) }
    /// Keys < `end`.
    public static func upTo(_ end: Value) -> KeyRange { KeyRange(upper: .exclusive(end)) }
    /// Keys ≤ `end`.
    public static func through(_ end: Value) -> KeyRange { KeyRange(upper: .inclusive(end)) }
    /// Keys ≥ `start` and < `end`.
    public static func between(_ start: Value, _ end: Value) -> KeyRange {
        KeyRange(lower: .inclusive(start), upper: .exclusive(end))
    }
}

/// A read-only transaction: a consistent snapshot of the last commit when it began.
public final class ReadTransaction: Transaction {}

/// Options of a put.
public struct PutOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `MDB_NOOVERWRITE`: fail with ``LMDBError/Code/keyExists`` if the key is present.
    public static let noOverwrite = PutOptions(rawValue: UInt32(MDB_NOOVERWRITE))
    /// `MDB_NODUPDATA` (`duplicateSort` only): fail with ``LMDBError/Code/keyExists`` if the pair is present.
    public static let noDuplicateData = PutOptions(rawValue: UInt32(MDB_NODUPDATA))
    /// `MDB_APPEND`: the key sorts after every key present (fast bulk load); otherwise
    /// ``LMDBError/Code/appendOutOfOrder``.
    public static let append = PutOptions(rawValue: UInt32(MDB_APPEND))
    /// `MDB_APPENDDUP` (`duplicateSort` only): the value sorts after the key's other values.
    public static let appendDuplicate = PutOptions(rawValue: UInt32(MDB_APPENDDUP))
}

/// A read-write transaction. Handed to the closure of ``Environment/write(_:)-(WriteTransaction)->R``
/// or of the async `write`; commits when the closure returns, aborts when it throws.
public final class WriteTransaction: Transaction {
    /// Set when an operation hit `MDB_MAP_FULL`: the transaction is poisoned and must be re-run on a grown map.
    @exclusivity(unchecked) var sawMapFull = false
    private weak var parent: WriteTransaction?
    @exclusivity(unchecked) private var completionHandlers: [(_ committed: Bool) -> Void] = []

    init(environment: Environment, handle: OpaquePointer, parent: WriteTransaction? = nil) {
        self.parent = parent
        super.init(environment: environment, handle: handle)
    }

    public override var isReadOnly: Bool { false }

    private func writableHandle(_ operation: String, _ name: String) throws -> OpaquePointer {
        let txn = try handle
        if borrowDepth > 0 {
            throw LMDBError(
                code: .borrowedBytesInScope, operation: operation, database: name, path: environment.path,
                message: "a write while bytes borrowed from the map are in scope would invalidate them")
        }
        writeGeneration &+= 1
        return txn
    }

    private func failure(_ rc: Int32, _ operation: String, _ name: String) -> LMDBError {
        if rc == MDB_MAP_FULL { markMapFull() }
        return LMDBError(returnCode: rc, operation: operation, database: name, path: environment.path)
    }

    func markMapFull() {
        sawMapFull = true
        parent?.markMapFull()
    }

    /// Stores `value` under `key`, replacing an existing value (or, in a `duplicateSort`
    /// database, adding a duplicate).
    ///
    /// - Throws: ``LMDBError/Code/invalidKeySize`` and ``LMDBError/Code/invalidValueSize``
    ///   before calling LMDB; ``LMDBError/Code/keyExists`` under `noOverwrite`/`noDuplicateData`;
    ///   ``LMDBError/Code/appendOutOfOrder`` under `append`/`appendDuplicate`.
    public func put<Key, Value>(
        _ database: Database<Key, Value>, _ key: Key.Value, _ value: Value.Value, options: PutOptions = []
    ) throws {
        try Key.withEncoded(key) { keyBytes in
            try Value.withEncoded(value) { valueBytes in try put(database, rawKey: keyBytes, rawValue: valueBytes, options: options) }
        }
    }

    /// ``put(_:_:_:options:)`` with the key and value given as the bytes to store (no codec):
    /// for callers that build them in a buffer of their own (LMDB copies them).
    public func put<Key, Value>(
        _ database: Database<Key, Value>, rawKey keyBytes: UnsafeRawBufferPointer, rawValue valueBytes: UnsafeRawBufferPointer,
        options: PutOptions = []
    ) throws {
        _ = try put(database, keyBytes, valueBytes, options, tryingAppend: false)
    }

    /// ``put(_:rawKey:rawValue:options:)`` that first tries `MDB_APPEND`, for keys that mostly
    /// arrive in ascending order (time-ordered ids): when the key sorts after every key in the
    /// database, LMDB puts it at the end without searching the tree, and splits a full last page
    /// at its end, so the pages behind stay full. Otherwise LMDB refuses without changing
    /// anything (after a walk down the tree's right edge) and the key is put as usual, with
    /// `options`. In a `duplicateSort` database it is a plain put.
    ///
    /// - Returns: Whether the key went in at the end.
    @discardableResult
    public func putAppendingIfLast<Key, Value>(
        _ database: Database<Key, Value>, rawKey keyBytes: UnsafeRawBufferPointer, rawValue valueBytes: UnsafeRawBufferPointer,
        options: PutOptions = []
    ) throws -> Bool {
        try put(database, keyBytes, valueBytes, options, tryingAppend: !database.isDuplicateSort)
    }

    private func put<Key, Value>(
        _ database: Database<Key, Value>, _ keyBytes: UnsafeRawBufferPointer, _ valueBytes: UnsafeRawBufferPointer,
        _ options: PutOptions, tryingAppend: Bool
    ) throws -> Bool {
        let txn = try writableHandle("mdb_put", database.name)
        try checkDatabase(database)
        try checkKey(keyBytes, database, operation: "mdb_put")
        try checkValue(valueBytes, database)
        var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
        var dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
        if tryingAppend {
            let appending = options.union(.append)
            let rc = mdb_put(txn, database.handle, &keyValue, &dataValue, appending.rawValue)
            if rc == 0 { return true }
            // MDB_KEYEXIST under MDB_APPEND: the key is not past the last, and nothing changed.
            if rc != MDB_KEYEXIST { throw putFailure(rc, database, appending) }
        }
        let rc = mdb_put(txn, database.handle, &keyValue, &dataValue, options.rawValue)
        if rc != 0 { throw putFailure(rc, database, options) }
        return false
    }

    private func putFailure<Key, Value>(_ rc: Int32, _ database: Database<Key, Value>, _ options: PutOptions) -> LMDBError {
        if rc == MDB_KEYEXIST && !options.isDisjoint(with: [.append, .appendDuplicate]) {
            return LMDBError(
                code: .appendOutOfOrder, returnCode: rc, operation: "mdb_put(append)", database: database.name,
                path: environment.path, message: "the appended key or value does not sort after the last one",
                hint: "Append keys in ascending order, or put without append")
        }
        return failure(rc, "mdb_put", database.name)
    }

    func checkValue<Key, Value>(_ value: UnsafeRawBufferPointer, _ database: Database<Key, Value>) throws {
        guard database.isDuplicateSort else { return }
        if value.count == 0 || value.count > environment.maxKeySize {
            throw LMDBError(
                code: .invalidValueSize, operation: "mdb_put", database: database.name, path: environment.path,
                message: "a value of \(value.count) bytes in a duplicateSort database; values must be 1…\(environment.maxKeySize) bytes")
        }
    }

    /// Deletes `key` and all its values. Returns false if the key was absent.
    @discardableResult
    public func delete<Key, Value>(_ database: Database<Key, Value>, _ key: Key.Value) throws -> Bool {
        try Key.withEncoded(key) { keyBytes in try delete(database, rawKey: keyBytes) }
    }

    /// ``delete(_:_:)`` with the key given as its stored bytes (no codec).
    @discardableResult
    public func delete<Key, Value>(_ database: Database<Key, Value>, rawKey keyBytes: UnsafeRawBufferPointer) throws -> Bool {
        let txn = try writableHandle("mdb_del", database.name)
        try checkDatabase(database)
        try checkKey(keyBytes, database, operation: "mdb_del")
        var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
        let rc = mdb_del(txn, database.handle, &keyValue, nil)
        if rc == MDB_NOTFOUND { return false }
        if rc != 0 { throw failure(rc, "mdb_del", database.name) }
        return true
    }

    /// Deletes one key–value pair of a `duplicateSort` database. Returns false if it was absent.
    @discardableResult
    public func delete<Key, Value>(_ database: Database<Key, Value>, _ key: Key.Value, value: Value.Value) throws -> Bool {
        let txn = try writableHandle("mdb_del", database.name)
        try checkDatabase(database)
        return try Key.withEncoded(key) { keyBytes in
            try checkKey(keyBytes, database, operation: "mdb_del")
            return try Value.withEncoded(value) { valueBytes in
                try checkValue(valueBytes, database)
                var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                let rc = mdb_del(txn, database.handle, &keyValue, &dataValue)
                if rc == MDB_NOTFOUND { return false }
                if rc != 0 { throw failure(rc, "mdb_del", database.name) }
                return true
            }
        }
    }

    /// Deletes every entry of the database (`mdb_drop` without deleting the database itself).
    public func clear<Key, Value>(_ database: Database<Key, Value>) throws {
        let txn = try writableHandle("mdb_drop", database.name)
        try checkDatabase(database)
        let rc = mdb_drop(txn, database.handle, 0)
        if rc != 0 { throw failure(rc, "mdb_drop", database.name) }
    }

    /// Runs `body` in a nested (child) transaction: its changes join this transaction when
    /// `body` returns, and are rolled back alone when it throws. This transaction cannot be
    /// used while the child is open.
    ///
    /// LMDB allocates page lists (about 3 MiB) for each child, so a child is not free.
    public func nested<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        let txn = try writableHandle("mdb_txn_begin(nested)", "")
        var childPointer: OpaquePointer?
        let rc = mdb_txn_begin(environment.handle, txn, 0, &childPointer)
        if rc != 0 { throw failure(rc, "mdb_txn_begin(nested)", "") }
        guard let childPointer else {
            throw LMDBError(code: .system, operation: "mdb_txn_begin(nested)", message: "no handle returned")
        }
        let child = WriteTransaction(environment: environment, handle: childPointer, parent: self)
        hasActiveChild = true
        defer {
            hasActiveChild = false
            child.abortIfActive()
        }
        let result = try body(child)
        try child.commit()
        return result
    }

    /// Registers `handler` to learn how the transaction ends, on the thread that ends it:
    /// `true` right after the outermost transaction committed, `false` before it is aborted
    /// (while it still holds LMDB's write lock) or after its commit failed. A nested
    /// transaction passes its handlers to its parent when it commits.
    ///
    /// The handlers of this process's commits run in commit order, whichever threads
    /// committed: the next commit waits until the handlers of the one before have returned.
    /// So handlers must be quick, must not wait for anything, and must not use the environment.
    public func onCompletion(_ handler: @escaping (_ committed: Bool) -> Void) {
        completionHandlers.append(handler)
    }

    private func complete(_ committed: Bool) {
        let handlers = completionHandlers
        completionHandlers = []
        for handler in handlers { handler(committed) }
    }

    /// Commits. The handle is consumed before LMDB is called: a failed commit has freed it too.
    func commit() throws {
        guard let txn = end() else {
            throw LMDBError(code: .transactionEnded, operation: "mdb_txn_commit", message: "the transaction has already ended")
        }
        if let parent {
            let rc = mdb_txn_commit(txn)
            if rc != 0 {
                complete(false)
                throw failure(rc, "mdb_txn_commit", "")
            }
            parent.completionHandlers += completionHandlers
            completionHandlers = []
            return
        }
        if completionHandlers.isEmpty {
            let rc = mdb_txn_commit(txn)
            if rc != 0 { throw failure(rc, "mdb_txn_commit", "") }
            if writeGeneration > 0 { environment.signalCommit() }
            return
        }
        // Still holding LMDB's write lock: no other commit of this process can be between its
        // commit and its handlers, so taking `commitOrder` here orders the handlers as the commits.
        let rc = environment.commitOrder.withLock { _ in
            let rc = mdb_txn_commit(txn)
            complete(rc == 0)
            return rc
        }
        if rc != 0 { throw failure(rc, "mdb_txn_commit", "") }
        if writeGeneration > 0 { environment.signalCommit() }
    }

    /// Aborts if the transaction is still open (the handle is consumed first).
    func abortIfActive() {
        guard let txn = end() else { return }
        complete(false)
        mdb_txn_abort(txn)
    }
}
