import Foundation
import Locking
import LMDB
import Synchronization
import Testing
import TestSupport

@testable import JobStore

/// Each defect found in review and under stress (issue 8), with a test that failed before its fix.
@Suite("Regressions: defects found in review and under stress")
struct RegressionTests {
    /// Defect 1: the process's own commits were taken for another process's, so a writing
    /// program emptied its cache all the time.
    @Test("the cache survives the process's own concurrent writes: no invalidation, every read of an unchanged job hits")
    func cacheSurvivesOwnWrites() async throws {
        try await withStore { store in
            let cold = try await store.insert((0..<200).map { NewJob(name: "cold-\($0)") })
            for job in cold { _ = try store.job(job.id) }  // fill
            let hot = try await store.insert((0..<8).map { NewJob(name: "hot-\($0)") })
            for job in hot { _ = try store.job(job.id) }
            let before = store.cacheStatistics
            let stop = StopFlag()
            let reads = try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        var counter = 0
                        while !stop.isSet {
                            counter += 1
                            let round = counter
                            // Change a cached job, then read it back at once: the new value, never the old.
                            let id = hot[writer].id
                            try await store.update(id) { $0.priority = UInt8(round % 200) }
                            #expect(try store.job(id)?.priority == UInt8(round % 200))
                            try await store.insert(NewJob(name: "new-\(writer)-\(round)"))
                        }
                        return 0
                    }
                }
                group.addTask {
                    defer { stop.set() }
                    var reads = 0
                    for _ in 0..<300 {
                        for job in cold {
                            let read = try store.job(job.id)
                            #expect(read == job)
                            reads += 1
                        }
                        await Task.yield()
                    }
                    return reads
                }
                return try await group.reduce(0, +)
            }
            let after = store.cacheStatistics
            #expect(after.invalidations == before.invalidations, "own commits dropped the cache")
            // Every cold read hit; the writers' read-backs may hit or miss.
            #expect(after.hits - before.hits >= reads)
            try expectConsistent(store)
        }
    }

    /// Defects 3 and 4: a batch or chunk size of 0 looped forever.
    @Test("prune with batchSize 0 and a walk with chunkSize 0 are errors, not endless loops")
    func sizesBelowOne() async throws {
        try await withStore { store in
            try await store.insert(NewJob(name: "a"))
            for size in [0, -1] {
                expectCode(.invalidArgument) {
                    try store.prune(state: .succeeded, createdBefore: .now, batchSize: size)
                }
                await expectCode(.invalidArgument) {
                    try await store.prune(state: .succeeded, createdBefore: .now, batchSize: size)
                }
                expectCode(.invalidArgument) { try store.forEachJob(chunkSize: size) { _ in true } }
                expectCode(.invalidArgument) { try store.forEachJobHeader(chunkSize: size) { _, _ in true } }
                expectCode(.invalidArgument) {
                    try store.write { try $0.prune(state: .succeeded, createdBefore: .now, limit: size) }
                }
            }
            #expect(try store.count(.pending) == 1)
        }
    }

    @Test("cache and feed sizes below 1 are refused when the store opens")
    func optionsBelowOne() throws {
        try withTemporaryDirectory { directory in
            var options = testOptions
            options.cache.maxEntries = 0
            expectCode(.invalidArgument) { try JobRepository(path: directory.path, options: options) }
            options = testOptions
            options.feedCapacity = -5
            expectCode(.invalidArgument) { try JobRepository(path: directory.path, options: options) }
            options = testOptions
            options.environment.writer.maxBatchSize = 0
            expectCode(.storage) { try JobRepository(path: directory.path, options: options) }
        }
    }

    /// Defect 5: a short index key trapped in `Keys.trailingID`.
    @Test("a short index key is a corruptRecord error and a verify finding, never a crash")
    func shortIndexKeys() throws {
        try withStore { store in
            let job = try store.insert(NewJob(name: "a", queue: "q"))
            try store.environment.write { txn in
                try txn.put(store.db.created, [1, 2, 3], ())
                try txn.put(store.db.readyAny, [0, 1], ())
                try txn.put(store.db.ready, Array("q".utf8) + [0, 7], ())
                try txn.put(store.db.lease, [0], ())
                try txn.put(store.db.stateCreated, [JobState.succeeded.rawValue, 9], ())
            }
            expectCode(.corruptRecord) { try store.jobs(matching: JobFilter(), limit: 10) }
            expectCode(.corruptRecord) { try store.jobIDs(createdFrom: Timestamp(microseconds: .min), until: .now) }
            let owner = OwnerToken.random()
            expectCode(.corruptRecord) { try store.claim(lease: .seconds(5), owner: owner) }
            expectCode(.corruptRecord) { try store.claim(queue: "q", lease: .seconds(5), owner: owner) }
            expectCode(.corruptRecord) { try store.rescueExpiredLeases() }
            expectCode(.corruptRecord) { try store.prune(state: .succeeded, createdBefore: .now) }
            let problems = try store.verify()
            #expect(problems.count == 5)
            #expect(problems.allSatisfy { $0.kind == .strayIndexEntry })
            #expect(try store.job(job.id)?.state == .pending)
        }
    }

    /// Defect 6: `job()` read the meta page through `mdb_env_info` while another thread remapped it.
    @Test("reads hammering a store whose map grows many times: no crash, every read right")
    func readsDuringMapGrowth() throws {
        var options = testOptions
        options.environment.mapSize = 32 * 1024
        try withStore(options) { store in
            let first = try store.insert(NewJob(name: "first"))
            let stop = StopFlag()
            let readers = (0..<2).map { _ in
                Thread.detachedResult {
                    var reads = 0
                    while !stop.isSet {
                        guard try store.job(first.id) == first else { throw TestFailure("wrong job read") }
                        _ = try store.counts()
                        _ = try store.environmentInfo()
                        reads += 1
                    }
                    return reads
                }
            }
            for batch in 0..<60 {
                try store.insert((0..<100).map { NewJob(name: "job-\(batch)-\($0)", payload: [UInt8](repeating: 7, count: 200)) })
            }
            stop.set()
            for reader in readers { #expect(try reader.value() > 0) }
            #expect(try store.environmentInfo().mapSize >= 16 * 32 * 1024)
            #expect(try store.count(.pending) == 6001)
            try expectConsistent(store)
        }
    }

    /// Defect 7: `close()` while other threads read freed the environment under them.
    @Test("close while other threads read: each read either succeeds or gets .closed, never a crash")
    func closeWhileReading() throws {
        for _ in 0..<5 {
            try withTemporaryDirectory { directory in
                let store = try openStore(directory)
                let job = try store.insert(NewJob(name: "a"))
                let started = DispatchSemaphore(value: 0)
                let readers = (0..<3).map { _ in
                    Thread.detachedResult { () -> Int in
                        started.signal()
                        var reads = 0
                        while true {
                            do {
                                _ = try store.job(job.id)
                                _ = try store.uncachedJob(job.id)
                                _ = try store.counts()
                                _ = try store.environmentInfo()
                                reads += 1
                            } catch JobStoreError.Code.closed {
                                return reads
                            }
                        }
                    }
                }
                for _ in readers { started.wait() }
                store.close()
                for reader in readers { _ = try reader.value() }
                expectCode(.closed) { try store.insert(NewJob(name: "b")) }
            }
        }
    }

    /// Defect 8: dropping a store without `close()` and opening it again.
    @Test("a dropped store reopens at once; a store still referenced elsewhere is a clear alreadyOpen")
    func dropAndReopen() async throws {
        try await withTemporaryDirectory { directory in
            do {
                let store = try openStore(directory)
                try { try store.insert(NewJob(name: "a")) }()  // the synchronous face
                try await store.insert(NewJob(name: "b"))  // starts the writer thread
            }
            let reopened = try openStore(directory)
            #expect(try reopened.count(.pending) == 2)
            do {
                _ = try openStore(directory)
                Issue.record("a second open of a live store succeeded")
            } catch let error as JobStoreError {
                #expect(error.code == .alreadyOpen)
                #expect(error.description.contains("still referenced"))
                #expect(error.description.contains("close()"))
            }
            // Writes in flight when the last reference goes: the close waits for them, and the
            // next open (once nothing references the old store) sees all of them.
            let tasks = (0..<50).map { n in Task { try await reopened.insert(NewJob(name: "late-\(n)")) } }
            for task in tasks { _ = try await task.value }
        }
        // `reopened` and the tasks are gone now.
        try await withTemporaryDirectory { directory in
            do {
                let store = try openStore(directory)
                _ = (0..<50).map { n in Task { try await store.insert(NewJob(name: "dropped-\(n)")) } }
            }
            // The tasks may still hold the store: then the error says so; once they end, it opens.
            var store: JobRepository?
            for _ in 0..<10_000 where store == nil {
                do {
                    store = try openStore(directory)
                } catch let error as JobStoreError where error.code == .alreadyOpen {
                    #expect(error.description.contains("still referenced"))
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            let reopened = try #require(store)
            #expect(try reopened.count(.pending) == 50)
            reopened.close()
        }
    }

    /// The boundary: every call of the store throws `JobStoreError`, LMDB's code and text inside.
    @Test("LMDB errors reach callers wrapped in JobStoreError, with the LMDB error kept")
    func errorsAreWrapped() async throws {
        try await withTemporaryDirectory { directory in
            let store = try openStore(directory)
            store.close()
            for attempt in 0..<3 {
                do {
                    switch attempt {
                    case 0: _ = try store.counts()
                    case 1: try { try store.insert(NewJob(name: "a")) }()
                    default: try await store.insert(NewJob(name: "a"))
                    }
                    Issue.record("a closed store answered")
                } catch let error as JobStoreError {
                    #expect(error.code == .closed)
                    #expect((error.underlying as? LMDBError)?.code == .closed)
                }
            }
        }
    }
}

extension Thread {
    /// Runs `body` on a new thread; `value()` waits for its result.
    static func detachedResult<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> ThreadResult<T> {
        let result = ThreadResult<T>()
        Thread { result.set(Result { try body() }) }.start()
        return result
    }
}

/// A flag threads and tasks poll to stop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// The result of a thread started by ``Thread/detachedResult(_:)``.
final class ThreadResult<T: Sendable>: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let slot = Lock<Result<T, Error>?>(nil)

    func set(_ result: Result<T, Error>) {
        slot.withLock { $0 = result }
        done.signal()
    }

    /// Waits (at most 60 s, a hang detector) for the thread's result.
    func value() throws -> T {
        guard done.wait(timeout: .now() + 60) == .success, let result = slot.withLock({ $0 }) else {
            throw TestFailure("the thread did not finish within 60 s (a hang)")
        }
        return try result.get()
    }
}
