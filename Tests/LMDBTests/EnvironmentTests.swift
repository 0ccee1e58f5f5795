import Foundation
import Testing

@testable import LMDB
import TestSupport

@Suite("Environment: opening, guards, bad input and maintenance")
struct EnvironmentTests {
    @Test("a second open of the same directory in one process is refused, also through a symlink")
    func secondOpenGuard() throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.sub("store"), databases: [items])
        #expect { try Environment(path: directory.sub("store"), databases: [items]) } throws: {
            ($0 as? LMDBError)?.code == .alreadyOpen
        }
        try FileManager.default.createSymbolicLink(atPath: directory.sub("link"), withDestinationPath: directory.sub("store"))
        #expect { try Environment(path: directory.sub("link")) } throws: { ($0 as? LMDBError)?.code == .alreadyOpen }
        env.close()
        // After close, the path can be opened again and the data is there.
        let again = try Environment(path: directory.sub("link"), databases: [items])
        defer { again.close() }
        #expect(try again.read { try $0.count(again.database(items)) } == 0)
    }

    @Test("a closed environment refuses use with a clear error")
    func closedEnvironment() async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.path, databases: [items])
        let db = try env.database(items)
        env.close()
        env.close()  // twice is fine
        #expect { try env.read { _ in } } throws: { ($0 as? LMDBError)?.code == .closed }
        #expect { try env.write { _ in } } throws: { ($0 as? LMDBError)?.code == .closed }
        await #expect { try await env.write { txn in try txn.put(db, "a", "b") } } throws: {
            ($0 as? LMDBError)?.code == .closed
        }
    }

    @Test("read-only: an empty directory or a missing path is not turned into a store")
    func readOnlyNeverCreates() throws {
        let directory = TemporaryDirectory()
        let options = EnvironmentOptions(readOnly: true)
        #expect { try Environment(path: directory.path, options: options) } throws: {
            ($0 as? LMDBError)?.code == .notAnEnvironment
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        #expect { try Environment(path: directory.sub("missing"), options: options) } throws: {
            ($0 as? LMDBError)?.code == .notAnEnvironment
        }
        #expect(!FileManager.default.fileExists(atPath: directory.sub("missing")))
        _ = FileManager.default.createFile(atPath: directory.sub("file"), contents: Data("hello".utf8))
        #expect { try Environment(path: directory.sub("file")) } throws: { ($0 as? LMDBError)?.code == .notAnEnvironment }
    }

    @Test("read-only: writes are refused, reads work, a missing declared database is named")
    func readOnlyStore() throws {
        let directory = TemporaryDirectory()
        do {
            let env = try Environment(path: directory.path, databases: [items])
            try env.write { txn in try txn.put(env.database(items), "a", "1") }
            env.close()
        }
        let reader = try Environment(path: directory.path, options: EnvironmentOptions(readOnly: true), databases: [items])
        let db = try reader.database(items)
        #expect(try reader.read { try $0.get(db, "a") } == "1")
        #expect { try reader.write { _ in } } throws: { ($0 as? LMDBError)?.code == .readOnly }
        reader.close()
        #expect {
            try Environment(path: directory.path, options: EnvironmentOptions(readOnly: true), databases: [items, tagsDefinition])
        } throws: { ($0 as? LMDBError)?.code == .notFound }
    }

    @Test("a file that is not an LMDB data file is a clear error")
    func garbageDataFile() throws {
        let directory = TemporaryDirectory()
        let garbage = Data((0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        _ = FileManager.default.createFile(atPath: directory.sub("data.mdb"), contents: garbage)
        #expect { try Environment(path: directory.path, databases: [items]) } throws: { error in
            let code = (error as? LMDBError)?.code
            return code == .invalidFile || code == .versionMismatch
        }
        // A failed open leaves the path free to open again.
        try FileManager.default.removeItem(atPath: directory.sub("data.mdb"))
        try Environment(path: directory.path, databases: [items]).close()
    }

    @Test("size errors are caught before LMDB, with the database named")
    func sizeErrors() throws {
        let directory = TemporaryDirectory()
        let raw = DatabaseDefinition<BytesCodec, BytesCodec>(name: "raw")
        let dups = DatabaseDefinition<BytesCodec, BytesCodec>(name: "dups", flags: [.duplicateSort])
        let ints = DatabaseDefinition<BytesCodec, BytesCodec>(name: "ints", flags: [.integerKey])
        let env = try Environment(path: directory.path, databases: [raw, dups, ints])
        defer { env.close() }
        let (rawDB, dupDB, intDB) = (try env.database(raw), try env.database(dups), try env.database(ints))
        #expect(env.maxKeySize == 511)
        func code(_ body: () throws -> Void) -> LMDBError.Code? {
            do { try body() } catch { return (error as? LMDBError)?.code }
            return nil
        }
        try env.write { txn in
            #expect(code { try txn.put(rawDB, [], [1]) } == .invalidKeySize)
            #expect(code { try txn.put(rawDB, [UInt8](repeating: 1, count: 512), [1]) } == .invalidKeySize)
            try txn.put(rawDB, [UInt8](repeating: 1, count: 511), [UInt8](repeating: 2, count: 100_000))  // big values are fine
            #expect(code { try txn.put(dupDB, [1], []) } == .invalidValueSize)
            #expect(code { try txn.put(dupDB, [1], [UInt8](repeating: 1, count: 512)) } == .invalidValueSize)
            #expect(code { try txn.put(intDB, [1, 2, 3], [1]) } == .invalidKeySize)
            #expect(code { _ = try txn.get(rawDB, []) } == .invalidKeySize)
            do {
                try txn.put(rawDB, [], [1])
            } catch let error as LMDBError {
                #expect(error.database == "raw")
                #expect(error.description.contains("1…511 bytes"))
            }
        }
    }

    @Test("undeclared databases, contradictory flags and put-option failures are clear errors")
    func declarationErrors() throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.sub("a"), databases: [items])
        defer { env.close() }
        #expect { try env.database(tagsDefinition) } throws: { ($0 as? LMDBError)?.code == .undeclaredDatabase }
        let wrongFlags = DatabaseDefinition<StringCodec, StringCodec>(name: "items", flags: [.duplicateSort])
        #expect { try env.database(wrongFlags) } throws: { ($0 as? LMDBError)?.code == .incompatible }
        let bad = DatabaseDefinition<StringCodec, StringCodec>(name: "bad", flags: [.duplicateFixed])
        #expect { try Environment(path: directory.sub("b"), databases: [bad]) } throws: {
            ($0 as? LMDBError)?.code == .invalidArgument
        }
        let db = try env.database(items)
        try env.write { txn in
            try txn.put(db, "b", "1", options: .append)
            try txn.put(db, "c", "1", options: .append)
            #expect { try txn.put(db, "a", "1", options: .append) } throws: { ($0 as? LMDBError)?.code == .appendOutOfOrder }
            #expect { try txn.put(db, "b", "2", options: .noOverwrite) } throws: { ($0 as? LMDBError)?.code == .keyExists }
        }
        // A handle of one environment used with another's transaction.
        let other = try Environment(path: directory.sub("c"), databases: [items])
        defer { other.close() }
        #expect { try other.read { try $0.get(db, "b") } } throws: { ($0 as? LMDBError)?.code == .wrongEnvironment }
    }

    @Test("info, statistics, reader table, stale-reader check and database names")
    func information() throws {
        try withEnvironment(databases: [items, tagsDefinition]) { env in
            let db = try env.database(items)
            try env.write { txn in for i in 0..<100 { try txn.put(db, "key-\(i)", "value") } }
            let info = try env.info()
            #expect(info.mapSize == 1 << 30)
            #expect(info.pageSize == 4096)
            #expect(info.lastTransactionID >= 2)
            #expect(info.usedBytes > 0)
            let stats = try env.statistics(of: db)
            #expect(stats.entries == 100)
            #expect(stats.depth >= 1)
            #expect(try env.databaseNames().sorted() == ["items", "tags"])
            #expect(try env.clearStaleReaders() == 0)
            _ = try env.read { _ in try env.readerTable() }
            #expect(try env.readerTable().contains("pid"))
        }
    }

    @Test("a hot copy, plain and compacted, is a complete store")
    func copy() throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.sub("source"), databases: [items])
        let db = try env.database(items)
        try env.write { txn in for i in 0..<1000 { try txn.put(db, "key-\(i)", String(repeating: "v", count: 100)) } }
        try env.write { txn in for i in 0..<500 { try txn.delete(db, "key-\(i)") } }
        for compact in [false, true] {
            let destination = directory.sub("copy-\(compact)")
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
            try env.copy(to: destination, compact: compact)
            let copy = try Environment(path: destination, options: EnvironmentOptions(readOnly: true), databases: [items])
            #expect(try copy.read { try $0.entries(copy.database(items)).count } == 500)
            copy.close()
        }
        env.close()
        let plain = try FileManager.default.attributesOfItem(atPath: directory.sub("copy-false/data.mdb"))[.size] as? Int
        let compacted = try FileManager.default.attributesOfItem(atPath: directory.sub("copy-true/data.mdb"))[.size] as? Int
        #expect((compacted ?? .max) <= (plain ?? 0))
    }

    @Test("LMDB's own mdb_stat lists the named databases of a store we wrote", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/mdb_stat")))
    func mdbStatReadsOurStore() throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.path, databases: [items, tagsDefinition])
        try env.write { txn in
            try txn.put(env.database(items), "a", "1")
            try txn.put(env.database(tagsDefinition), "t", "x")
            try txn.put(env.database(tagsDefinition), "t", "y")
        }
        env.close()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mdb_stat")
        process.arguments = ["-a", directory.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(output.contains("Status of items"))
        #expect(output.contains("Status of tags"))
        #expect(output.contains("Entries: 2"))
    }

    @Test("durability modes open and write")
    func durabilityModes() throws {
        let directory = TemporaryDirectory()
        for durability in Durability.allCases {
            let env = try Environment(
                path: directory.sub(durability.rawValue), options: EnvironmentOptions(durability: durability), databases: [items])
            try env.write { txn in try txn.put(env.database(items), "a", durability.rawValue) }
            try env.sync()
            env.close()
        }
    }
}

@Suite("Write-mapped environments")
struct WriteMapTests {
    @Test("writeMap: writes, reads, growth and group commit work; a nested transaction is a clear error")
    func writeMap() async throws {
        let directory = TemporaryDirectory()
        var options = EnvironmentOptions(mapSize: 64 * 1024, durability: .noSync)
        options.writeMap = true
        let env = try Environment(path: directory.path, options: options, databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        try onThread {
            for key in UInt64(0)..<500 { try env.write { txn in try txn.put(numbers, key, [UInt8](repeating: 3, count: 1000)) } }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in UInt64(1000)..<1100 { group.addTask { try await env.write { txn in try txn.put(numbers, key, [4]) } } }
            try await group.waitForAll()
        }
        #expect(try env.read { try $0.count(numbers) } == 600)
        #expect(try env.info().mapSize > 64 * 1024)
        try onThread {
            try env.write { txn in
                #expect(throws: LMDBError.self) { try txn.nested { child in try child.put(numbers, 9999, [1]) } }
            }
        }
    }

    @Test("a truncated data file is refused at open with a clear error, not a crash; restored, it opens again")
    func truncatedFile() throws {
        let directory = TemporaryDirectory()
        let items = DatabaseDefinition<StringCodec, BytesCodec>(name: "items")
        do {
            let env = try Environment(path: directory.path, databases: [items])
            try env.write { txn in
                for n in 0..<2000 { try txn.put(env.database(items), "key-\(n)", [UInt8](repeating: UInt8(n % 251), count: 300)) }
            }
            env.close()
        }
        let file = directory.path + "/data.mdb"
        let whole = try Data(contentsOf: URL(fileURLWithPath: file))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: file))
        #expect { try Environment(path: directory.path, databases: [items]) } throws: { error in
            guard let error = error as? LMDBError else { return false }
            return error.code == .corrupted && error.message.contains("truncated") && error.hint?.contains("backup") == true
        }
        try whole.write(to: URL(fileURLWithPath: file))
        let env = try Environment(path: directory.path, databases: [items])
        #expect(try env.read { txn in try txn.count(env.database(items)) } == 2000)
        env.close()
    }

    @Test("a full reader table is a clear error for the read that does not fit, and reads work again once a slot frees")
    func readerTableFull() throws {
        let directory = TemporaryDirectory()
        let items = DatabaseDefinition<StringCodec, StringCodec>(name: "items")
        let env = try Environment(path: directory.path, options: EnvironmentOptions(maxReaders: 1), databases: [items])
        defer { env.close() }
        try env.write { txn in try txn.put(env.database(items), "a", "b") }
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let holder = Thread {
            _ = try? env.read { txn -> String? in
                holding.signal()
                release.wait()  // keeps the only reader slot
                return try txn.get(env.database(items), "a")
            }
            done.signal()
        }
        holder.start()
        holding.wait()
        #expect { try env.read { txn in try txn.get(env.database(items), "a") } } throws: { error in
            guard let error = error as? LMDBError else { return false }
            return error.code == .readersFull && error.hint != nil
        }
        release.signal()
        done.wait()
        // The holder's slot is free again (pooled for reuse): reads work.
        #expect(try env.read { txn in try txn.get(env.database(items), "a") } == "b")
    }
}
