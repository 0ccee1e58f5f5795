import CLMDB
import Testing

@testable import LMDB
import TestSupport

/// One database flag combination, with key and value encodings whose database order is numeric order.
struct FlagCase: CustomTestStringConvertible, Sendable {
    let flags: DatabaseFlags
    var testDescription: String { flags.names.isEmpty ? "plain" : flags.names.joined(separator: "+") }

    var isDuplicateSort: Bool { flags.contains(.duplicateSort) }

    /// Keys compare as their bytes (big-endian), from the end (reverseKey: little-endian), or as native integers.
    func key(_ n: UInt64) -> [UInt8] {
        if flags.contains(.integerKey) || flags.contains(.reverseKey) { return withUnsafeBytes(of: n.littleEndian) { Array($0) } }
        return withUnsafeBytes(of: n.bigEndian) { Array($0) }
    }

    func value(_ n: UInt64) -> [UInt8] {
        if flags.contains(.integerDuplicates) || flags.contains(.reverseDuplicates) {
            return withUnsafeBytes(of: n.littleEndian) { Array($0) }
        }
        return withUnsafeBytes(of: n.bigEndian) { Array($0) }
    }

    static let all: [FlagCase] = [
        [], [.reverseKey], [.integerKey],
        [.duplicateSort], [.duplicateSort, .duplicateFixed], [.duplicateSort, .reverseDuplicates],
        [.duplicateSort, .duplicateFixed, .integerDuplicates], [.duplicateSort, .integerKey],
        [.duplicateSort, .reverseKey, .reverseDuplicates],
    ].map { FlagCase(flags: $0) }
}

@Suite("Databases of every flag combination")
struct DatabaseFlagTests {
    static let keyCount: UInt64 = 50
    static let duplicates: UInt64 = 3

    /// Opens a store with one database of `flagCase` and fills it: keys 0..<50, each with 3
    /// values (duplicateSort) or one value (key × 10).
    func filled(_ flagCase: FlagCase, in directory: TemporaryDirectory) throws -> (Environment, Database<BytesCodec, BytesCodec>) {
        let definition = DatabaseDefinition<BytesCodec, BytesCodec>(name: "data", flags: flagCase.flags)
        let env = try Environment(path: directory.path, databases: [definition])
        let db = try env.database(definition)
        try env.write { txn throws in
            for n in 0..<Self.keyCount {
                if flagCase.isDuplicateSort {
                    for d in 0..<Self.duplicates { try txn.put(db, flagCase.key(n), flagCase.value(n * 10 + d)) }
                } else {
                    try txn.put(db, flagCase.key(n), flagCase.value(n * 10))
                }
            }
        }
        return (env, db)
    }

    func keyNumber(_ flagCase: FlagCase, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let raw = bytes.loadUnaligned(as: UInt64.self)
        if flagCase.flags.contains(.integerKey) || flagCase.flags.contains(.reverseKey) { return UInt64(littleEndian: raw) }
        return UInt64(bigEndian: raw)
    }

    func valueNumber(_ flagCase: FlagCase, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let raw = bytes.loadUnaligned(as: UInt64.self)
        if flagCase.flags.contains(.integerDuplicates) || flagCase.flags.contains(.reverseDuplicates) {
            return UInt64(littleEndian: raw)
        }
        return UInt64(bigEndian: raw)
    }

    /// Every (key, value) number pair in `range`, in the order LMDB returns them.
    func pairs(
        _ flagCase: FlagCase, _ txn: Transaction, _ db: Database<BytesCodec, BytesCodec>,
        _ range: KeyRange<[UInt8]> = .all, reverse: Bool = false
    ) throws -> [[UInt64]] {
        var result: [[UInt64]] = []
        try txn.forEach(db, in: range, reverse: reverse) { key, value in
            result.append([keyNumber(flagCase, key), valueNumber(flagCase, value)])
            return true
        }
        return result
    }

    func expected(_ flagCase: FlagCase, keys: some Sequence<UInt64>) -> [[UInt64]] {
        keys.flatMap { n in
            flagCase.isDuplicateSort ? (0..<Self.duplicates).map { [n, n * 10 + $0] } : [[n, n * 10]]
        }
    }

    @Test("put, get, count and full iteration in order", arguments: FlagCase.all)
    func putGetIterate(_ flagCase: FlagCase) throws {
        let directory = TemporaryDirectory()
        let (env, db) = try filled(flagCase, in: directory)
        defer { env.close() }
        try env.read { txn throws in
            #expect(try txn.count(db) == Int(Self.keyCount * (flagCase.isDuplicateSort ? Self.duplicates : 1)))
            for n in [0, 7, Self.keyCount - 1] {
                let value = try #require(try txn.get(db, flagCase.key(n)))
                #expect(value == flagCase.value(n * 10))  // the first duplicate
            }
            #expect(try txn.get(db, flagCase.key(Self.keyCount + 5)) == nil)
            #expect(try pairs(flagCase, txn, db) == expected(flagCase, keys: 0..<Self.keyCount))
            #expect(try pairs(flagCase, txn, db, reverse: true) == expected(flagCase, keys: 0..<Self.keyCount).reversed())
        }
    }

    @Test("ranges with inclusive, exclusive and open bounds, both directions", arguments: FlagCase.all)
    func ranges(_ flagCase: FlagCase) throws {
        let directory = TemporaryDirectory()
        let (env, db) = try filled(flagCase, in: directory)
        defer { env.close() }
        let k = flagCase.key
        try env.read { txn throws in
            let cases: [(KeyRange<[UInt8]>, ClosedRange<UInt64>?)] = [
                (.between(k(10), k(20)), 10...19),
                (KeyRange(lower: .exclusive(k(10)), upper: .inclusive(k(20))), 11...20),
                (.from(k(45)), 45...49),
                (.after(k(45)), 46...49),
                (.upTo(k(3)), 0...2),
                (.through(k(3)), 0...3),
                (.between(k(20), k(20)), nil),
                (.from(k(60)), nil),
            ]
            for (range, keys) in cases {
                let want = expected(flagCase, keys: keys.map { Array($0) } ?? [])
                #expect(try pairs(flagCase, txn, db, range) == want)
                #expect(try pairs(flagCase, txn, db, range, reverse: true) == want.reversed())
            }
            let limited = try txn.entries(db, in: .from(k(5)), limit: 4)
            #expect(limited.count == 4)
            #expect(limited.first?.key == k(5))
        }
    }

    @Test("a range scan's inline bound check orders keys as LMDB's default comparison: bytes, then the shorter first")
    func boundOrder() throws {
        // Every pair from short strings over a small alphabet: equal prefixes, one a prefix of
        // the other, a difference in the first, the eighth or the ninth byte, the empty key.
        var keys: [[UInt8]] = [[], [0], [255], [1, 2], [1, 2, 3], Array(repeating: 7, count: 8), Array(repeating: 7, count: 9)]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let count = Int.random(in: 0...20, using: &generator)
            keys.append((0..<count).map { _ in UInt8.random(in: 0...2, using: &generator) * 127 })
        }
        keys.append(Array(repeating: 7, count: 8) + [8])  // differs from the 9-byte key in its ninth byte
        let directory = TemporaryDirectory()
        let (env, db) = try filled(FlagCase(flags: []), in: directory)
        defer { env.close() }
        try env.read { txn throws in
            let handle = try txn.handle
            for a in keys {
                for b in keys {
                    a.withUnsafeBytes { x in
                        b.withUnsafeBytes { y in
                            // LMDB's own comparison of the database is the reference.
                            var first = MDB_val(mv_size: x.count, mv_data: UnsafeMutableRawPointer(mutating: x.baseAddress))
                            var second = MDB_val(mv_size: y.count, mv_data: UnsafeMutableRawPointer(mutating: y.baseAddress))
                            let lmdb = mdb_cmp(handle, db.handle, &first, &second)
                            let empty = UnsafeRawPointer(bitPattern: 1)!  // an empty key's base may be nil: never read
                            let inline = Transaction.compareBytes(x.baseAddress ?? empty, x.count, y.baseAddress ?? empty, y.count)
                            #expect(lmdb.signum() == inline.signum(), "\(a) against \(b)")
                        }
                    }
                }
            }
        }
    }

    @Test("delete keys and single duplicates", arguments: FlagCase.all)
    func delete(_ flagCase: FlagCase) throws {
        let directory = TemporaryDirectory()
        let (env, db) = try filled(flagCase, in: directory)
        defer { env.close() }
        let perKey = Int(flagCase.isDuplicateSort ? Self.duplicates : 1)
        try env.write { txn throws in
            #expect(try txn.delete(db, flagCase.key(5)))
            #expect(try !txn.delete(db, flagCase.key(5)))
            #expect(try txn.get(db, flagCase.key(5)) == nil)
            if flagCase.isDuplicateSort {
                #expect(try txn.delete(db, flagCase.key(6), value: flagCase.value(61)))
                #expect(try !txn.delete(db, flagCase.key(6), value: flagCase.value(61)))
            }
        }
        try env.read { txn throws in
            let removed = perKey + (flagCase.isDuplicateSort ? 1 : 0)
            #expect(try txn.count(db) == Int(Self.keyCount) * perKey - removed)
            let six = try pairs(flagCase, txn, db, .between(flagCase.key(6), flagCase.key(7)))
            #expect(six == (flagCase.isDuplicateSort ? [[6, 60], [6, 62]] : [[6, 60]]))
        }
        try env.write { txn in try txn.clear(db) }
        try env.read { txn throws in #expect(try txn.count(db) == 0) }
    }

    @Test("cursor positioning, duplicates and deletion through the cursor", arguments: FlagCase.all)
    func cursor(_ flagCase: FlagCase) throws {
        let directory = TemporaryDirectory()
        let (env, db) = try filled(flagCase, in: directory)
        defer { env.close() }
        try env.read { txn throws in
            try txn.withCursor(db) { cursor throws in
                #expect(try cursor.last())
                #expect(try cursor.key() == flagCase.key(Self.keyCount - 1))
                #expect(try cursor.seek(to: flagCase.key(12)))
                #expect(try cursor.value() == flagCase.value(120))
                #expect(try !cursor.seek(to: flagCase.key(Self.keyCount + 1)))
                #expect(throws: LMDBError.self) { try cursor.key() }  // not positioned
                if flagCase.isDuplicateSort {
                    #expect(try cursor.seek(to: flagCase.key(12)))
                    #expect(try cursor.duplicateCount() == Int(Self.duplicates))
                    #expect(try cursor.lastDuplicate())
                    #expect(try cursor.value() == flagCase.value(122))
                    #expect(try !cursor.nextDuplicate())
                    #expect(try cursor.seek(to: flagCase.key(12), value: flagCase.value(121)))
                    #expect(try cursor.nextKey())
                    #expect(try cursor.key() == flagCase.key(13))
                    #expect(try cursor.value() == flagCase.value(130))
                }
            }
        }
        // Delete every second key through a write cursor.
        try env.write { txn throws in
            try txn.withCursor(db) { cursor throws in
                var more = try cursor.first()
                while more {
                    let number = try cursor.key().withUnsafeBytes { keyNumber(flagCase, $0) }
                    if number % 2 == 0 {
                        try cursor.deleteCurrent(allDuplicates: true)
                        more = try cursor.next()  // the entry after the deleted key
                    } else {
                        more = try cursor.nextKey()
                    }
                }
            }
        }
        try env.read { txn throws in
            let keys = Set(try pairs(flagCase, txn, db).map { $0[0] })
            #expect(keys == Set(stride(from: 1, to: Self.keyCount, by: 2)))
        }
    }
}
