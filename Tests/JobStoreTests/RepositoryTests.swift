import Foundation
import Testing
import TestSupport

@testable import JobStore

/// The options most tests use: a relaxed (noSync) store.
let testOptions = JobStoreOptions(durability: .noSync)

func openStore(_ directory: TemporaryDirectory, _ options: JobStoreOptions = testOptions) throws -> JobRepository {
    try JobRepository(path: directory.path, options: options)
}

/// Runs `body` with a fresh store in a temporary directory; closes it and removes the
/// directory afterwards.
func withStore<R>(_ options: JobStoreOptions = testOptions, _ name: String = #function, _ body: (JobRepository) throws -> R) throws -> R {
    try withTemporaryDirectory(name) { directory in
        let store = try openStore(directory, options)
        defer { store.close() }
        return try body(store)
    }
}

/// Runs async `body` with a fresh store in a temporary directory; closes it and removes the
/// directory afterwards.
func withStore<R>(_ options: JobStoreOptions = testOptions, _ name: String = #function, _ body: (JobRepository) async throws -> R) async throws -> R {
    try await withTemporaryDirectory(name) { directory in
        let store = try openStore(directory, options)
        defer { store.close() }
        return try await body(store)
    }
}

/// Fails the test if the store is inconsistent: any `verify()` problem.
func expectConsistent(_ store: JobRepository, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let problems = try store.verify()
    #expect(problems.isEmpty, "verify found: \(problems.prefix(5))", sourceLocation: sourceLocation)
}

@Suite("Repository: insert, read, list, count, update, delete")
struct RepositoryTests {
    @Test("insert and read back every field; counts per state and queue")
    func insertAndRead() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(
                name: "send-email", queue: "mail", payload: Array("to: ada".utf8), priority: 7, maxAttempts: 3, tenant: "acme"))
            #expect(job.state == .pending)
            #expect(job.runAt == job.createdAt)
            let read = try #require(try store.job(job.id))
            #expect(read == job)
            #expect(try store.uncachedJob(job.id) == job)
            #expect(try store.count(.pending) == 1)
            #expect(try store.count(queue: "mail", state: .pending) == 1)
            #expect(try store.queueCounts() == ["mail": [.pending: 1]])
            #expect(try store.job(JobID(milliseconds: 1, counter: 0, random: 0)) == nil)
            try expectConsistent(store)
        }
    }

    @Test("jobs in a state, oldest or newest first, paged with a keyset cursor")
    func listingAndPaging() throws {
        try withStore() { store in
            let base = Timestamp(microseconds: 1_700_000_000_000_000)
            let jobs = try store.insert((0..<25).map { n in
                NewJob(name: "job-\(n)", queue: "q", createdAt: base.adding(.microseconds(100 * n)))
            })
            for job in jobs.prefix(5) { try store.cancel(job.id) }
            var seen: [JobID] = []
            var cursor: PageCursor?
            repeat {
                let page = try store.jobs(in: .pending, limit: 7, after: cursor)
                seen += page.jobs.map(\.id)
                cursor = page.next
            } while cursor != nil
            #expect(seen == jobs.dropFirst(5).map(\.id))
            let newest = try store.jobs(in: .pending, order: .newestFirst, limit: 3)
            #expect(newest.jobs.map(\.id) == jobs.suffix(3).reversed().map(\.id))
            let second = try store.jobs(in: .pending, order: .newestFirst, limit: 3, after: newest.next)
            #expect(second.jobs.map(\.id) == Array(jobs[19...21].reversed()).map(\.id))
            #expect(try store.jobs(in: .cancelled).jobs.count == 5)
            // A page that ends exactly at the last job has no next cursor.
            let exact = try store.jobs(in: .pending, limit: 10)
            let last = try store.jobs(in: .pending, limit: 10, after: exact.next)
            #expect(exact.next != nil && last.jobs.count == 10 && last.next == nil)
            #expect(try store.jobs(in: .running).jobs.isEmpty)
            let cursorText = try #require(newest.next).description
            #expect(try PageCursor(parsing: cursorText) == newest.next)
        }
    }

    @Test("jobs created in a time range")
    func timeRange() throws {
        try withStore() { store in
            let base = Timestamp(microseconds: 1_700_000_000_000_000)
            let jobs = try store.insert((0..<100).map { n in NewJob(name: "j", createdAt: base.adding(.microseconds(100 * n))) })
            let ids = try store.jobIDs(createdFrom: base.adding(.microseconds(1000)), until: base.adding(.microseconds(2000)))
            #expect(ids == jobs[10..<20].map(\.id))
            #expect(try store.jobs(createdFrom: base, until: base.adding(.microseconds(300))).map(\.id) == jobs[0..<3].map(\.id))
            #expect(try store.jobIDs(createdFrom: base.adding(.seconds(1)), until: base.adding(.seconds(2))).isEmpty)
        }
    }

    @Test("a unique key returns the live holder; a finished job releases it")
    func uniqueJobs() throws {
        try withStore() { store in
            let first = try store.insert(NewJob(name: "report", uniqueKey: "report:2026-11-23"))
            let again = try store.insert(NewJob(name: "report", payload: [1], uniqueKey: "report:2026-11-23"))
            #expect(again == first)
            #expect(try store.count(.pending) == 1)
            try store.cancel(first.id)
            let fresh = try store.insert(NewJob(name: "report", uniqueKey: "report:2026-11-23"))
            #expect(fresh.id != first.id)
            // In one transaction too: the second insert sees the first.
            let pair = try store.write { txn in
                [try txn.insert(NewJob(name: "x", uniqueKey: "k")), try txn.insert(NewJob(name: "y", uniqueKey: "k"))]
            }
            #expect(pair[0] == pair[1])
            try expectConsistent(store)
        }
    }

    @Test("update moves indexes and counters; an illegal state change is refused and changes nothing")
    func updateAndTransitions() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(name: "a", queue: "one"))
            let moved = try store.update(job.id) { job in
                job.queue = "two"
                job.priority = 9
            }
            #expect(moved.queue == "two" && moved.priority == 9)
            #expect(try store.count(queue: "two", state: .pending) == 1)
            #expect(try store.count(queue: "one", state: .pending) == 0)
            let done = try store.transition(job.id, to: .running)
            #expect(done.attempts == 1 && done.lease != nil)
            try store.transition(job.id, to: .succeeded)
            #expect {
                try store.transition(job.id, to: .pending)
            } throws: { error in
                guard let error = error as? JobStoreError, error.code == .illegalTransition else { return false }
                return error.description.contains("succeeded") && error.description.contains("pending") && error.jobID == job.id
            }
            #expect(try store.job(job.id)?.state == .succeeded)
            #expect(try store.delete(job.id))
            #expect(try !store.delete(job.id))
            #expect(try store.counts().values.reduce(0, +) == 0)
            try expectConsistent(store)
        }
    }

    @Test("records of very different sizes written in one transaction each read back whole (the transaction reuses one encoding buffer)")
    func mixedSizesInOneTransaction() throws {
        try withStore() { store in
            let sizes = [3, 300_000, 0, 70_000, 1_500, 1_000_000, 12]
            let payload = { (size: Int, seed: Int) in (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }
            let jobs = try store.write { txn in
                let inserted = try sizes.enumerated().map { index, size in
                    try txn.insert(NewJob(name: "sized-\(index)", queue: "q\(index % 2)", payload: payload(size, index)))
                }
                // Then each changed in reverse order (small after large and large after small),
                // appending to the timeline the record holds.
                for job in inserted.reversed() {
                    try txn.update(job.id) { $0.priority = UInt8(job.payload.count % 200) }
                }
                return inserted
            }
            for (index, job) in jobs.enumerated() {
                let read = try #require(try store.uncachedJob(job.id))
                #expect(read.payload == payload(sizes[index], index), "job \(index)")
                #expect(read.name == "sized-\(index)" && read.priority == UInt8(sizes[index] % 200))
                #expect(try store.events(of: job.id).events.map(\.kind) == [.inserted, .changed])
            }
            try expectConsistent(store)
        }
    }

    @Test("a write that throws changes nothing: no record, index, counter, cache entry or feed event")
    func abortedWrite() throws {
        try withStore() { store in
            let kept = try store.insert(NewJob(name: "kept"))
            _ = try store.job(kept.id)  // cached
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try store.write { txn in
                    try txn.insert(NewJob(name: "dropped"))
                    try txn.update(kept.id) { $0.priority = 99 }
                    throw Refused()
                }
            }
            #expect(try store.count(.pending) == 1)
            #expect(try store.job(kept.id)?.priority == 0)
            #expect(try store.jobs(in: .pending).jobs.map(\.name) == ["kept"])
            try expectConsistent(store)
        }
    }

    @Test("streaming visits every job in short chunks")
    func streaming() throws {
        try withStore() { store in
            let jobs = try store.insert((0..<250).map { NewJob(name: "j\($0)") })
            var seen: [JobID] = []
            try store.forEachJob(chunkSize: 17) { job in
                seen.append(job.id)
                return true
            }
            #expect(seen == jobs.map(\.id))
            var headers = 0
            try store.forEachJobHeader(chunkSize: 10) { _, header in
                #expect(header.state == .pending)
                headers += 1
                return headers < 42
            }
            #expect(headers == 42)
        }
    }
}

@Suite("Restore: complete jobs in any state")
struct RestoreTests {
    @Test("restored jobs keep every field, are indexed and counted; duplicates and bad leases are refused")
    func restore() throws {
        try withStore() { store in
            let now = Timestamp.now
            let running = Job(
                id: JobID(milliseconds: 10, counter: 0, random: 1), name: "r", queue: "q", state: .running, priority: 3,
                createdAt: now, updatedAt: now, runAt: now, attempts: 1, maxAttempts: 5,
                lease: Lease(expiresAt: now.adding(.seconds(60)), owner: .random()), uniqueKey: "k", payload: [1])
            let done = Job(
                id: JobID(milliseconds: 11, counter: 0, random: 1), name: "d", queue: "q", state: .succeeded, priority: 0,
                createdAt: now, updatedAt: now, runAt: now, attempts: 1, maxAttempts: 5, payload: [], result: [9])
            try store.write { txn in
                try txn.restore(running)
                try txn.restore(done)
            }
            #expect(try store.job(running.id) == running)
            #expect(try store.counts()[.running] == 1 && store.counts()[.succeeded] == 1)
            #expect { try store.write { try $0.restore(running) } } throws: { ($0 as? JobStoreError)?.code == .invalidField }
            let leaseless = Job(
                id: JobID(milliseconds: 12, counter: 0, random: 1), name: "x", queue: "q", state: .running, priority: 0,
                createdAt: now, updatedAt: now, runAt: now, maxAttempts: 1, payload: [])
            #expect { try store.write { try $0.restore(leaseless) } } throws: { ($0 as? JobStoreError)?.code == .invalidField }
            try expectConsistent(store)
        }
    }

    @Test("new jobs in key order go in by append (record and creation-time entry); out of order, by search, all the same")
    func keyOrderAppends() throws {
        let base = Timestamp.now.adding(.seconds(-10))
        func job(_ index: Int) -> Job {
            let created = base.adding(.milliseconds(index))
            return Job(
                id: JobID(milliseconds: UInt64(created.microseconds / 1000), counter: 0, random: UInt64(index)), name: "j", queue: "q",
                state: .pending, priority: 0, createdAt: created, updatedAt: created, runAt: created, maxAttempts: 1,
                payload: Array(repeating: 7, count: 200))
        }
        /// Restores the jobs in `order`, 100 a transaction; the puts that went in by append.
        func appends(_ order: [Int]) throws -> Int {
            try withStore { store in
                var appended = 0
                for start in stride(from: 0, to: order.count, by: 100) {
                    appended += try store.write { txn in
                        for index in order[start..<min(start + 100, order.count)] { try txn.restore(job(index)) }
                        return txn.appendedPuts
                    }
                }
                try expectConsistent(store)
                #expect(try store.counts()[.pending] == order.count)
                for index in order { #expect(try store.uncachedJob(job(index).id) == job(index)) }
                // The last job again: refused as a duplicate, not appended.
                let last = try #require(order.max())
                expectCode(.invalidField) { try store.write { try $0.restore(job(last)) } }
                // New jobs now, created after all of them: appended.
                #expect(try store.write { txn in _ = try txn.insert(NewJob(name: "new", queue: "q")); return txn.appendedPuts } == 2)
                return appended
            }
        }
        #expect(try appends(Array(0..<1_000)) == 2_000)
        #expect(try appends(Array((0..<1_000).reversed())) == 2)  // only the first, into the empty databases
        // Every other job in order, then the ones between: each below the end but the last.
        #expect(try appends(Array(stride(from: 0, to: 1_000, by: 2)) + Array(stride(from: 1, to: 1_000, by: 2))) == 1_002)
    }
}

/// Expects `body` to throw a ``JobStoreError`` with `code`.
func expectCode<R>(_ code: JobStoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R) {
    #expect(sourceLocation: sourceLocation) { _ = try body() } throws: { ($0 as? JobStoreError)?.code == code }
}

/// Expects async `body` to throw a ``JobStoreError`` with `code`.
func expectCode<R>(_ code: JobStoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R) async {
    await #expect(sourceLocation: sourceLocation) { _ = try await body() } throws: { ($0 as? JobStoreError)?.code == code }
}
