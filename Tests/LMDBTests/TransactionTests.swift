import Foundation
import Testing

@testable import LMDB
import TestSupport

let items = DatabaseDefinition<StringCodec, StringCodec>(name: "items")
let numbersDefinition = DatabaseDefinition<UInt64Codec, BytesCodec>(name: "numbers")
let tagsDefinition = DatabaseDefinition<StringCodec, StringCodec>(name: "tags", flags: [.duplicateSort])

@Suite("Transactions: commit, abort, nesting and scope rules")
struct TransactionTests {
    @Test("returning commits, throwing aborts")
    func commitAndAbort() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            try env.write { txn in try txn.put(db, "kept", "1") }
            struct Boom: Error {}
            #expect(throws: Boom.self) {
                try env.write { txn in
                    try txn.put(db, "dropped", "2")
                    throw Boom()
                }
            }
            try env.read { txn throws in
                #expect(try txn.get(db, "kept") == "1")
                #expect(try txn.get(db, "dropped") == nil)
            }
        }
    }

    @Test("a nested transaction that throws rolls back alone; one that returns joins its parent")
    func nestedRollback() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            struct Boom: Error {}
            try env.write { txn in
                try txn.put(db, "parent", "p")
                try txn.nested { child in try child.put(db, "child-ok", "c") }
                #expect(throws: Boom.self) {
                    try txn.nested { child in
                        try child.put(db, "child-failed", "x")
                        try child.put(db, "parent", "overwritten")
                        #expect(try child.get(db, "child-failed") == "x")
                        throw Boom()
                    }
                }
                // The parent sees its own and the successful child's writes, not the failed child's.
                #expect(try txn.get(db, "parent") == "p")
                #expect(try txn.get(db, "child-failed") == nil)
                #expect(try txn.get(db, "child-ok") == "c")
            }
            try env.read { txn throws in
                #expect(try txn.entries(db).map(\.key) == ["child-ok", "parent"])
            }
        }
    }

    @Test("a parent used while its child is open is an error")
    func parentBusyDuringChild() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            try env.write { txn in
                try txn.nested { _ in
                    #expect { try txn.put(db, "a", "b") } throws: { ($0 as? LMDBError)?.code == .childTransactionActive }
                }
            }
        }
    }

    @Test("a transaction or cursor used after its closure is an error, not a crash")
    func escapedTransaction() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            let escapedRead = try env.read { $0 }
            #expect { try escapedRead.get(db, "x") } throws: { ($0 as? LMDBError)?.code == .transactionEnded }
            let escapedWrite = try env.write { $0 }
            #expect { try escapedWrite.put(db, "x", "y") } throws: { ($0 as? LMDBError)?.code == .transactionEnded }
            let escapedCursor = try env.read { txn in try txn.withCursor(db) { $0 } }
            #expect { try escapedCursor.first() } throws: { ($0 as? LMDBError)?.code == .transactionEnded }
        }
    }

    @Test("writing while borrowed bytes are in scope is refused")
    func borrowGuard() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            try env.write { txn in try txn.put(db, "a", "1") }
            try env.write { txn in
                try txn.withValue(db, "a") { bytes in
                    #expect(bytes.map { Array($0) } == Array("1".utf8))
                    #expect { try txn.put(db, "b", "2") } throws: { ($0 as? LMDBError)?.code == .borrowedBytesInScope }
                }
                try txn.forEach(db) { _, _ in
                    #expect { try txn.delete(db, "a") } throws: { ($0 as? LMDBError)?.code == .borrowedBytesInScope }
                    return false
                }
                try txn.put(db, "b", "2")  // fine once the borrow ended
            }
        }
    }

    @Test("a second write transaction on the same thread is an error, not a deadlock")
    func reentrantWrite() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            try onThread(timeout: 10) {
                try env.write { txn in
                    try txn.put(db, "outer", "1")
                    #expect { try env.write { _ in } } throws: { ($0 as? LMDBError)?.code == .reentrantWrite }
                    // A read inside a write is fine (it sees the last commit, not this transaction).
                    #expect(try env.read { try $0.get(db, "outer") } == nil)
                }
            }
        }
    }

    @Test("reads see a consistent snapshot while a write is in progress")
    func snapshotIsolation() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            try env.write { txn in try txn.put(db, "k", "old") }
            try env.read { reader throws in
                try onThread { try env.write { txn in try txn.put(db, "k", "new") } }
                #expect(try reader.get(db, "k") == "old")
            }
            #expect(try env.read { try $0.get(db, "k") } == "new")
        }
    }

    @Test("transaction ids advance with each commit")
    func transactionIDs() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            let before = try env.info().lastTransactionID
            let writeID = try env.write { txn in
                try txn.put(db, "a", "b")
                return try txn.id
            }
            #expect(writeID == before + 1)
            #expect(try env.info().lastTransactionID == writeID)
            #expect(try env.read { try $0.id } == writeID)
        }
    }
}

@Suite("Puts that append when they can")
struct AppendingPutTests {
    @Test("putAppendingIfLast appends only keys past the last, puts the rest as usual, and keeps noOverwrite")
    func appendingIfLast() throws {
        let definition = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "keys")
        try withEnvironment(databases: [definition, tagsDefinition]) { env in
            let database = try env.database(definition)
            func puts(_ keys: [[UInt8]], _ options: PutOptions = []) throws -> [Bool] {
                try env.write { txn in
                    try keys.map { key in
                        try key.withUnsafeBytes { try txn.putAppendingIfLast(database, rawKey: $0, rawValue: UnsafeRawBufferPointer(start: nil, count: 0), options: options) }
                    }
                }
            }
            // Into the empty database; an extension after its prefix; below the last; the last
            // itself (a plain put replaces it); past it.
            #expect(try puts([[5], [5, 0], [4, 9], [5, 0], [6]]) == [true, true, false, false, true])
            #expect(try puts([[5, 5], [7]]) == [false, true])
            // With noOverwrite, a present key is refused as present, at the end or below it.
            for key: [UInt8] in [[7], [5]] {
                #expect { try puts([key], .noOverwrite) } throws: { ($0 as? LMDBError)?.code == .keyExists }
            }
            #expect(try puts([[8]], .noOverwrite) == [true])
            let keys = try env.read { txn in try txn.entries(database).map(\.key) }
            #expect(keys == [[4, 9], [5], [5, 0], [5, 5], [6], [7], [8]])
            // A duplicateSort database: a plain put (MDB_APPEND means something else there).
            let tags = try env.database(tagsDefinition)
            let appended = try env.write { txn in
                try Array("b".utf8).withUnsafeBytes { key in
                    try Array("x".utf8).withUnsafeBytes { value in try txn.putAppendingIfLast(tags, rawKey: key, rawValue: value) }
                }
            }
            #expect(appended == false)
            #expect(try env.read { try $0.get(tags, "b") } == "x")
        }
    }
}

@Suite("Prefix scans")
struct PrefixTests {
    @Test("prefix iteration both ways, prefix seek, and the 0xFF edge")
    func prefixes() throws {
        let directory = TemporaryDirectory()
        let raw = DatabaseDefinition<BytesCodec, BytesCodec>(name: "raw")
        let env = try Environment(path: directory.path, databases: [raw])
        defer { env.close() }
        let db = try env.database(raw)
        let keys: [[UInt8]] = [[1], [1, 0], [1, 2, 3], [1, 0xFF], [1, 0xFF, 0xFF], [2], [2, 0], [0xFF], [0xFF, 1]]
        try env.write { txn in for key in keys { try txn.put(db, key, key) } }
        func scan(_ prefix: [UInt8], reverse: Bool = false) throws -> [[UInt8]] {
            var found: [[UInt8]] = []
            try env.read { txn in
                try txn.forEach(db, prefix: prefix, reverse: reverse) { key, _ in
                    found.append(Array(key))
                    return true
                }
            }
            return found
        }
        #expect(try scan([1]) == [[1], [1, 0], [1, 2, 3], [1, 0xFF], [1, 0xFF, 0xFF]])
        #expect(try scan([1], reverse: true) == [[1, 0xFF, 0xFF], [1, 0xFF], [1, 2, 3], [1, 0], [1]])
        #expect(try scan([1, 0xFF]) == [[1, 0xFF], [1, 0xFF, 0xFF]])
        #expect(try scan([0xFF]) == [[0xFF], [0xFF, 1]])
        #expect(try scan([0xFF], reverse: true) == [[0xFF, 1], [0xFF]])
        #expect(try scan([3]).isEmpty)
        try env.read { txn throws in
            try txn.withCursor(db) { cursor throws in
                #expect(try cursor.seek(prefix: [2]))
                #expect(try cursor.key() == [2])
                #expect(try !cursor.seek(prefix: [1, 1]))
                #expect(try cursor.seek(prefix: [1, 2]))
                #expect(try cursor.key() == [1, 2, 3])
            }
            #expect { try txn.forEach(db, prefix: []) { _, _ in true } } throws: {
                ($0 as? LMDBError)?.code == .invalidArgument
            }
        }
    }
}

/// Runs `body` with a fresh environment in a temporary directory; closes it and removes the
/// directory afterwards.
func withEnvironment<R>(
    options: EnvironmentOptions = EnvironmentOptions(), databases: [any AnyDatabaseDefinition], _ name: String = #function,
    _ body: (Environment) throws -> R
) throws -> R {
    try withTemporaryDirectory(name) { directory in
        let env = try Environment(path: directory.path, options: options, databases: databases)
        defer { env.close() }
        return try body(env)
    }
}

/// Runs async `body` with a fresh environment in a temporary directory; closes it and removes
/// the directory afterwards.
func withEnvironment<R>(
    options: EnvironmentOptions = EnvironmentOptions(), databases: [any AnyDatabaseDefinition], _ name: String = #function,
    _ body: (Environment) async throws -> R
) async throws -> R {
    try await withTemporaryDirectory(name) { directory in
        let env = try Environment(path: directory.path, options: options, databases: databases)
        defer { env.close() }
        return try await body(env)
    }
}
