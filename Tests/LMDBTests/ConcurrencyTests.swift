import Foundation
import Locking
import Synchronization
import Testing

@testable import LMDB
import TestSupport

/// Runs `body` in a task and waits at most `seconds` for it, without waiting on the task
/// itself when it hangs (a task group would wait for its hung child forever).
func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let winner = FirstOnly<CheckedContinuation<T, Error>>()
    return try await withCheckedThrowingContinuation { continuation in
        winner.continuation.withLock { $0 = continuation }
        Task {
            let result = await Result { try await body() }
            winner.take()?.resume(with: result)
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            winner.take()?.resume(throwing: TestFailure("did not finish within \(seconds) s: a hang"))
        }
    }
}

/// Hands out a value once: the first `take()` gets it, later ones get nil.
final class FirstOnly<Value: Sendable>: Sendable {
    let continuation = Lock<Value?>(nil)
    func take() -> Value? { continuation.withLock { $0.take() } }
}

extension Result where Failure == Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

@Suite("Async writes: group commit, isolation of failures, thread affinity")
struct ConcurrencyTests {
    static let isolations: [WriteIsolation] = [.nestedTransactions, .rerunWithoutFailed]

    @Test("many concurrent async writers: every write committed exactly once, in shared commits", arguments: isolations)
    func manyWriters(isolation: WriteIsolation) async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path, options: EnvironmentOptions(writer: WriterOptions(isolation: isolation)),
            databases: [numbersDefinition, items])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        let counters = try env.database(items)
        let tasks = 100
        let writesPerTask = 10
        try await withTimeout(120) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for write in 0..<writesPerTask {
                            let key = UInt64(task * writesPerTask + write)
                            try await env.write { txn in
                                try txn.put(numbers, key, Array("task \(task)".utf8))
                                // A read-modify-write: lost or doubled writes would show in the total.
                                let count = Int(try txn.get(counters, "count") ?? "0") ?? 0
                                try txn.put(counters, "count", String(count + 1))
                            }
                            await Task.yield()
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let total = tasks * writesPerTask
        try env.read { txn throws in
            #expect(try txn.count(numbers) == total)
            #expect(try txn.get(counters, "count") == String(total))
        }
        let stats = env.writerStatistics
        #expect(stats.requests == total)
        #expect(stats.commits < total, "\(tasks) concurrent writers must share commits, got \(stats)")
    }

    @Test("a request that throws rolls back alone; the rest of its batch commits", arguments: isolations)
    func failingRequestRollsBackAlone(isolation: WriteIsolation) async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path, options: EnvironmentOptions(writer: WriterOptions(isolation: isolation)),
            databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        struct Refused: Error, Equatable { let key: UInt64 }
        // Hold the writer thread so that the next requests queue up and share one batch.
        let blocker = Task { try await env.write { txn in usleep(200_000); try txn.put(numbers, 9999, [1]) } }
        try await Task.sleep(for: .milliseconds(50))
        let outcomes = try await withTimeout(60) {
            await withTaskGroup(of: (UInt64, Error?).self) { group in
                for key in UInt64(0)..<40 {
                    group.addTask {
                        do {
                            try await env.write { txn in
                                try txn.put(numbers, key, [UInt8(key)])
                                if key % 5 == 0 { throw Refused(key: key) }
                            }
                            return (key, nil)
                        } catch {
                            return (key, error)
                        }
                    }
                }
                var outcomes: [UInt64: Error?] = [:]
                for await (key, error) in group { outcomes[key] = error }
                return outcomes
            }
        }
        try await blocker.value
        for (key, error) in outcomes {
            if key % 5 == 0 {
                #expect((error as? Refused) == Refused(key: key))
            } else {
                #expect(error == nil)
            }
        }
        try env.read { txn throws in
            for key in UInt64(0)..<40 {
                #expect(try txn.contains(numbers, key) == (key % 5 != 0), "key \(key)")
            }
        }
        #expect(env.writerStatistics.largestBatch > 1)
    }

    @Test("writes from many tasks across suspension points, mixed with sync writes on threads, never hang")
    func threadAffinity() async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path, options: EnvironmentOptions(durability: .noSync), databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        let asyncWrites = 16 * 50
        try await withTimeout(120) {
            // Synchronous writers on their own OS threads contend for LMDB's lock with the writer thread.
            let syncDone = Atomic<Int>(0)
            for thread in 0..<2 {
                Thread {
                    for i in 0..<200 {
                        try? env.write { txn in try txn.put(numbers, UInt64(1_000_000 + thread * 1000 + i), [2]) }
                    }
                    syncDone.add(1, ordering: .relaxed)
                }.start()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for i in 0..<50 {
                            // Suspension points between writes: the task resumes on whatever thread.
                            try await Task.sleep(for: .microseconds(Int.random(in: 0...200)))
                            try await env.write { txn in try txn.put(numbers, UInt64(task * 50 + i), [1]) }
                            await Task.yield()
                            _ = try env.read { try $0.get(numbers, UInt64(task * 50 + i)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            while syncDone.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(5)) }
            // The write lock is free: one more write of each kind goes through.
            try await env.write { txn in try txn.put(numbers, 42_000_000, [3]) }
            try onThread { try env.write { txn in try txn.put(numbers, 42_000_001, [3]) } }
        }
        #expect(try env.read { try $0.count(numbers) } == asyncWrites + 400 + 2)
    }

    @Test("one transaction per write (maxBatchSize 1) commits every request on its own")
    func noGroupCommit() async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path,
            options: EnvironmentOptions(durability: .noSync, writer: WriterOptions(maxBatchSize: 1)),
            databases: [numbersDefinition])
        defer { env.close() }
        let numbers = try env.database(numbersDefinition)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in UInt64(0)..<64 {
                group.addTask { try await env.write { txn in try txn.put(numbers, key, [1]) } }
            }
            try await group.waitForAll()
        }
        #expect(env.writerStatistics.commits == 64)
        #expect(env.writerStatistics.largestBatch == 1)
    }

    @Test("close waits for queued async writes and then refuses new ones")
    func closeDrainsQueue() async throws {
        let directory = TemporaryDirectory()
        let env = try Environment(path: directory.path, databases: [numbersDefinition])
        let numbers = try env.database(numbersDefinition)
        let writes = (UInt64(0)..<20).map { key in
            Task { try await env.write { txn in try txn.put(numbers, key, [1]) } }
        }
        try await Task.sleep(for: .milliseconds(20))
        env.close()
        var committed = 0
        for write in writes {
            if (try? await write.value) != nil { committed += 1 }
        }
        let reopened = try Environment(path: directory.path, databases: [numbersDefinition])
        defer { reopened.close() }
        // Every write that reported success is on disk.
        #expect(try reopened.read { try $0.count(reopened.database(numbersDefinition)) } == committed)
    }
}
