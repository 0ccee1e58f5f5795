import Foundation
import Testing
import TestSupport

@testable import JobStore

@Suite("Claims, leases, retries, rescue, prune")
struct ClaimTests {
    @Test("claims take the highest priority, then the earliest runAt, then the oldest; future jobs wait")
    func claimOrder() throws {
        try withStore() { store in
            let now = Timestamp.now
            let low = try store.insert(NewJob(name: "low", queue: "a", priority: 1, runAt: now.adding(.seconds(-10))))
            let highLate = try store.insert(NewJob(name: "high-late", queue: "b", priority: 9, runAt: now.adding(.seconds(-1))))
            let highEarly = try store.insert(NewJob(name: "high-early", queue: "a", priority: 9, runAt: now.adding(.seconds(-5))))
            let highFuture = try store.insert(NewJob(name: "high-future", queue: "a", priority: 9, runAt: now.adding(.seconds(3600))))
            let midOld = try store.insert(NewJob(name: "mid-1", queue: "b", priority: 5, runAt: now.adding(.seconds(-2))))
            let midNew = try store.insert(NewJob(name: "mid-2", queue: "b", priority: 5, runAt: now.adding(.seconds(-2))))
            let owner = OwnerToken.random()
            let claimed = try store.claim(limit: 10, lease: .seconds(30), owner: owner)
            #expect(claimed.map(\.id) == [highEarly.id, highLate.id, midOld.id, midNew.id, low.id])
            #expect(claimed.allSatisfy { $0.state == .running && $0.attempts == 1 && $0.lease?.owner == owner })
            #expect(try store.job(highFuture.id)?.state == .pending)
            #expect(try store.claim(lease: .seconds(30), owner: owner).isEmpty)
            try expectConsistent(store)
        }
    }

    @Test("claims from one queue take only that queue's jobs")
    func claimByQueue() throws {
        try withStore() { store in
            let past = Timestamp.now.adding(.seconds(-1))
            for n in 0..<6 {
                try store.insert(NewJob(name: "a\(n)", queue: n % 2 == 0 ? "alpha" : "alphabet", priority: UInt8(n), runAt: past))
            }
            let owner = OwnerToken.random()
            let claimed = try store.claim(queue: "alpha", limit: 10, lease: .seconds(30), owner: owner)
            #expect(claimed.map(\.name) == ["a4", "a2", "a0"])
            #expect(try store.claim(queue: "beta", lease: .seconds(30), owner: owner).isEmpty)
            #expect(try store.count(queue: "alphabet", state: .pending) == 3)
            try expectConsistent(store)
        }
    }

    @Test("complete and fail need the claim's token; a failure retries at its time, then fails for good")
    func outcomes() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(name: "flaky", maxAttempts: 2))
            let owner = OwnerToken.random()
            _ = try store.claim(lease: .seconds(30), owner: owner)
            #expect { try store.complete(job.id, owner: .random()) } throws: { ($0 as? JobStoreError)?.code == .leaseLost }
            let retryAt = Timestamp.now.adding(.seconds(-1))
            let retried = try store.fail(job.id, owner: owner, error: "timeout talking to smtp", retryAt: retryAt)
            #expect(retried.state == .pending && retried.runAt == retryAt && retried.lease == nil)
            #expect(retried.errors.map(\.message) == ["timeout talking to smtp"])
            #expect { try store.complete(job.id, owner: owner) } throws: { ($0 as? JobStoreError)?.code == .leaseLost }
            let second = OwnerToken.random()
            #expect(try store.claim(lease: .seconds(30), owner: second).first?.attempts == 2)
            let failed = try store.fail(job.id, owner: second, error: "again", retryAt: Timestamp.now)
            #expect(failed.state == .failed)
            #expect(failed.errors.map(\.attempt) == [1, 2])
            let back = try store.retry(failed.id)
            #expect(back.state == .pending && back.maxAttempts == 3)
            let third = OwnerToken.random()
            _ = try store.claim(lease: .seconds(30), owner: third)
            let done = try store.complete(job.id, owner: third, result: Array("sent".utf8))
            #expect(done.state == .succeeded && done.result == Array("sent".utf8))
            try expectConsistent(store)
        }
    }

    @Test("rescue: an expired lease goes back to pending or fails; the old worker's outcome is refused (River #1302)")
    func rescue() throws {
        try withStore() { store in
            let retryable = try store.insert(NewJob(name: "r", maxAttempts: 3))
            let lastTry = try store.insert(NewJob(name: "l", maxAttempts: 1))
            let healthy = try store.insert(NewJob(name: "h"))
            let deadWorker = OwnerToken.random()
            _ = try store.claim(limit: 2, lease: .milliseconds(1), owner: deadWorker)
            let aliveWorker = OwnerToken.random()
            _ = try store.claim(limit: 1, lease: .seconds(600), owner: aliveWorker)
            Thread.sleep(forTimeInterval: 0.01)
            let rescued = try store.rescueExpiredLeases()
            #expect(Set(rescued.map(\.id)) == [retryable.id, lastTry.id])
            #expect(try store.job(retryable.id)?.state == .pending)
            #expect(try store.job(lastTry.id)?.state == .failed)
            #expect(try store.job(healthy.id)?.state == .running)
            #expect(try store.job(retryable.id)?.errors.first?.message.contains("lease expired") == true)
            // The dead worker wakes up and reports: refused, the rescued job is untouched.
            #expect { try store.complete(retryable.id, owner: deadWorker) } throws: { ($0 as? JobStoreError)?.code == .leaseLost }
            #expect(try store.job(retryable.id)?.state == .pending)
            #expect(try store.rescueExpiredLeases().isEmpty)
            try expectConsistent(store)
        }
    }

    @Test("cancel and prune")
    func cancelAndPrune() throws {
        try withStore() { store in
            let base = Timestamp(microseconds: 1_700_000_000_000_000)
            let jobs = try store.insert((0..<30).map { NewJob(name: "j\($0)", createdAt: base.adding(.seconds($0))) })
            for job in jobs { try store.cancel(job.id) }
            #expect { try store.cancel(jobs[0].id) } throws: { ($0 as? JobStoreError)?.code == .illegalTransition }
            #expect { try store.write { try $0.prune(state: .pending, createdBefore: .now, limit: 10) } } throws: {
                ($0 as? JobStoreError)?.code == .illegalTransition
            }
            let pruned = try store.prune(state: .cancelled, createdBefore: base.adding(.seconds(25)), batchSize: 7)
            #expect(pruned == 25)
            #expect(try store.count(.cancelled) == 5)
            #expect(try store.job(jobs[0].id) == nil)
            #expect(try store.job(jobs[29].id) != nil)
            try expectConsistent(store)
        }
    }

    @Test("async: concurrent workers claim every job exactly once")
    func concurrentClaims() async throws {
        try await withStore() { store in
            let total = 400
            _ = try await store.insert((0..<total).map { NewJob(name: "j\($0)", priority: UInt8($0 % 4)) })
            let claimed = try await withThrowingTaskGroup(of: [JobID].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [JobID] = []
                        let owner = OwnerToken.random()
                        while true {
                            let jobs = try await store.claim(limit: 3, lease: .seconds(60), owner: owner)
                            if jobs.isEmpty { return mine }
                            for job in jobs {
                                try await store.complete(job.id, owner: owner)
                                mine.append(job.id)
                            }
                        }
                    }
                }
                var all: [JobID] = []
                for try await ids in group { all += ids }
                return all
            }
            #expect(claimed.count == total)
            #expect(Set(claimed).count == total)
            #expect(try store.count(.succeeded) == total)
            try expectConsistent(store)
        }
    }

    @Test("a paused queue gives no job to any claim until resumed; queues() lists counts, pause and the longest wait")
    func pauseAndResume() throws {
        try withStore { store in
            let mail = try store.insert(NewJob(name: "m", queue: "mail", createdAt: Timestamp.now.adding(.seconds(-5))))
            let other = try store.insert(NewJob(name: "o", queue: "other"))
            try store.pause(queue: "mail")
            try store.pause(queue: "mail")  // idempotent
            let owner = OwnerToken.random()
            #expect(try store.claim(queue: "mail", lease: .seconds(60), owner: owner).isEmpty)
            #expect(try store.claim(limit: 10, lease: .seconds(60), owner: owner).map(\.id) == [other.id])  // from any queue: skipped
            let summaries = try store.queues()
            #expect(summaries.map(\.name) == ["mail", "other"])
            #expect(summaries[0].pausedAt != nil && summaries[0].counts == [.pending: 1])
            #expect(summaries[0].oldestReadyAt == mail.runAt)
            #expect(summaries[1].pausedAt == nil && summaries[1].oldestReadyAt == nil)  // its job runs
            try store.resume(queue: "mail")
            #expect(try store.claim(queue: "mail", lease: .seconds(60), owner: owner).map(\.id) == [mail.id])
            try store.pause(queue: "empty")
            #expect(try store.queues().first { $0.name == "empty" }?.pausedAt != nil)  // a paused queue with no job is listed
            expectCode(.invalidArgument) { try store.pause(queue: "") }
            expectCode(.invalidArgument) { try store.resume(queue: String(repeating: "q", count: 65)) }
            try expectConsistent(store)
        }
    }

    @Test("a rate limit lets through its bucket, then tells when the next token comes; claims from any queue obey it too")
    func rateLimit() throws {
        try withStore { store in
            let jobs = try store.insert((0..<10).map { _ in NewJob(name: "call-api", queue: "api") })
            let free = try store.insert(NewJob(name: "free", queue: "free"))
            try store.setRateLimit(queue: "api", starts: 4, per: .seconds(3600))
            let owner = OwnerToken.random()
            let first = try store.write { try $0.claimBatch(queue: "api", limit: 10, lease: .seconds(60), owner: owner) }
            #expect(first.jobs.map(\.id) == Array(jobs.prefix(4)).map(\.id))
            let next = try #require(first.nextRunAt)  // the next token: in a quarter of the period
            #expect(next.microseconds - Timestamp.now.microseconds > 800_000_000 && next.microseconds - Timestamp.now.microseconds <= 900_000_000)
            #expect(try store.claim(queue: "api", limit: 10, lease: .seconds(60), owner: owner).isEmpty)
            #expect(try store.claim(limit: 10, lease: .seconds(60), owner: owner).map(\.id) == [free.id])  // any queue: api held back
            let limit = try #require(try store.queues().first { $0.name == "api" }?.rateLimit)
            #expect(limit.starts == 4 && limit.tokens < 0.01)
            try store.removeRateLimit(queue: "api")
            #expect(try store.claim(queue: "api", limit: 10, lease: .seconds(60), owner: owner).count == 6)
            expectCode(.invalidArgument) { try store.setRateLimit(queue: "api", starts: 0, per: .seconds(1)) }
            expectCode(.invalidArgument) { try store.setRateLimit(queue: "api", starts: 1, per: .zero) }
            try expectConsistent(store)
        }
    }

    @Test("a rate limit is never exceeded by two processes claiming as fast as they can")
    func rateLimitAcrossProcesses() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let (starts, periodMs) = (20, 200)
        do {
            let store = try JobRepository(path: path, options: testOptions)
            defer { store.close() }
            try store.insert((0..<2000).map { _ in NewJob(name: "call", queue: "api") })
            try store.setRateLimit(queue: "api", starts: starts, per: .milliseconds(Int64(periodMs)))
        }
        @Sendable func claimLoop() throws -> [Int64] {
            let child = Process()
            child.executableURL = try helperExecutable("JobStoreTestHelper")
            child.arguments = ["claim-loop", path, "api", "1000"]
            let output = Pipe()
            child.standardOutput = output
            try child.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            guard text.hasSuffix("done\n") else { throw TestFailure("claim-loop did not finish: \(text.suffix(200))") }
            return text.split(separator: "\n").dropLast().compactMap { Int64($0) }
        }
        let other = Thread.detachedResult { try claimLoop() }
        let mine = try claimLoop()
        let times = (mine + (try other.value())).sorted()
        let period = Int64(periodMs) * 1000
        #expect(mine.count > 0 && times.count > mine.count, "both processes claimed")
        // A token bucket of `starts`: in any window of one period, at most 2 · starts (a full burst, then the refill).
        var start = 0
        var worst = 0
        for end in times.indices {
            while times[end] - times[start] >= period { start += 1 }
            worst = max(worst, end - start + 1)
        }
        #expect(worst <= 2 * starts, "\(worst) starts within one period")
        let span = Double((times.last ?? 0) - (times.first ?? 0))
        #expect(Double(times.count) <= Double(starts) * (1 + span / Double(period)) + 1)
    }
}
