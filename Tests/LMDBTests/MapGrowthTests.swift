import Foundation
import Synchronization
import Testing

@testable import LMDB
import TestSupport

@Suite("Map growth: a full map grows and the write is re-run, invisibly")
struct MapGrowthTests {
    static let tinyMap = 64 * 1024

    @Test("sync writes grow a tiny map to over 100 times its size with no lost write")
    func syncGrowth() throws {
        try withEnvironment(options: EnvironmentOptions(mapSize: Self.tinyMap), databases: [numbersDefinition]) { env in
            let numbers = try env.database(numbersDefinition)
            let value = [UInt8](repeating: 7, count: 2000)
            var runs = 0
            for batch in UInt64(0)..<80 {
                try env.write { txn in
                    runs += 1
                    for key in batch * 50..<(batch + 1) * 50 { try txn.put(numbers, key, value + [UInt8(key % 251)]) }
                }
            }
            #expect(runs > 80, "some writes must have been re-run on a grown map")
            #expect(try env.info().mapSize >= 100 * Self.tinyMap)
            try env.read { txn throws in
                #expect(try txn.count(numbers) == 4000)
                for key in UInt64(0)..<4000 { #expect(try txn.get(numbers, key)?.last == UInt8(key % 251)) }
            }
        }
    }

    @Test("concurrent async writers grow the map inside group commits with no lost write")
    func asyncGrowth() async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path, options: EnvironmentOptions(mapSize: Self.tinyMap, durability: .noSync),
            databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        // A hang detector, not a timing: under AddressSanitizer, with the whole suite and helper
        // processes at once on two cores, this took longer than the 120 s it was (CI, 2026-11-29).
        try await withTimeout(600) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in UInt64(0)..<8 {
                    group.addTask {
                        for i in UInt64(0)..<500 {
                            try await env.write { txn in try txn.put(numbers, task * 10_000 + i, [UInt8](repeating: UInt8(task), count: 1500)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(try env.info().mapSize >= 100 * Self.tinyMap)
        #expect(try env.read { try $0.count(numbers) } == 4000)
    }

    @Test("readers on other threads keep reading while the map grows")
    func growthWithReaders() throws {
        try withEnvironment(options: EnvironmentOptions(mapSize: Self.tinyMap), databases: [numbersDefinition]) { env in
            let numbers = try env.database(numbersDefinition)
            try env.write { txn in try txn.put(numbers, 0, [UInt8](repeating: 1, count: 100)) }
            let stop = Atomic<Bool>(false)
            let reads = Atomic<Int>(0)
            let failures = Atomic<Int>(0)
            let group = DispatchGroup()
            for _ in 0..<2 {
                group.enter()
                Thread {
                    while !stop.load(ordering: .relaxed) {
                        do {
                            let value = try env.read { txn in try txn.get(numbers, 0) }
                            if value != [UInt8](repeating: 1, count: 100) { failures.add(1, ordering: .relaxed) }
                            reads.add(1, ordering: .relaxed)
                        } catch {
                            failures.add(1, ordering: .relaxed)
                        }
                    }
                    group.leave()
                }.start()
            }
            for key in UInt64(1)..<2000 {
                try env.write { txn in try txn.put(numbers, key, [UInt8](repeating: 2, count: 3000)) }
            }
            stop.store(true, ordering: .relaxed)
            group.wait()
            #expect(failures.load(ordering: .relaxed) == 0)
            #expect(reads.load(ordering: .relaxed) > 0)
            #expect(try env.info().mapSize >= 100 * Self.tinyMap)
        }
    }

    @Test("a write inside a read on the same thread that fills the map is a clear error, not a deadlock")
    func growthBlockedByOwnRead() throws {
        try withEnvironment(options: EnvironmentOptions(mapSize: Self.tinyMap), databases: [numbersDefinition]) { env in
            let numbers = try env.database(numbersDefinition)
            _ = try onThread(timeout: 20) {
                try env.read { _ in
                    #expect {
                        try env.write { txn in
                            for key in UInt64(0)..<200 { try txn.put(numbers, key, [UInt8](repeating: 1, count: 2000)) }
                        }
                    } throws: { ($0 as? LMDBError)?.code == .mapFull }
                }
            }
            // Outside the read, the same write succeeds.
            try env.write { txn in
                for key in UInt64(0)..<200 { try txn.put(numbers, key, [UInt8](repeating: 1, count: 2000)) }
            }
            #expect(try env.read { try $0.count(numbers) } == 200)
        }
    }

    @Test("a map grown by another process is adopted (MDB_MAP_RESIZED) for reads and writes")
    func growthByAnotherProcess() throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.path, options: EnvironmentOptions(mapSize: 1 << 20), databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        try env.write { txn in try txn.put(numbers, 1, [1]) }

        let child = Process()
        child.executableURL = try helperExecutable("LMDBTestHelper")
        child.arguments = ["grow", directory.path, "200"]
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        #expect(child.terminationStatus == 0)
        let childMapSize = Int(printed.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(childMapSize > 1 << 20)

        #expect(try env.read { try $0.count(numbers) } == 201)
        try env.write { txn in try txn.put(numbers, 2, [UInt8](repeating: 9, count: 100_000)) }
        #expect(try env.read { try $0.get(numbers, 2)?.count } == 100_000)
        #expect(try env.info().mapSize >= childMapSize)
    }

    @Test("mapSize 0 keeps an existing environment's recorded map size; an explicit size is used")
    func adoptsRecordedMapSize() throws {
        let directory = TemporaryDirectory()
        let items = DatabaseDefinition<StringCodec, StringCodec>(name: "items")
        do {
            let env = try Environment(path: directory.path, options: EnvironmentOptions(mapSize: 1 << 32), databases: [items])
            try env.write { txn in try txn.put(env.database(items), "a", "b") }
            env.close()
        }
        let adopted = try Environment(path: directory.path, databases: [items])
        #expect(try adopted.info().mapSize == 1 << 32)
        adopted.close()
        let fresh = TemporaryDirectory()
        let new = try Environment(path: fresh.path, databases: [items])
        #expect(try new.info().mapSize == 1 << 30)
        new.close()
    }
}
