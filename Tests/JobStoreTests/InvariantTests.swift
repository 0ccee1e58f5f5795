import Foundation
import Testing
import TestSupport

@testable import JobStore

/// splitmix64: a small, seedable generator, so a failing sequence can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Invariants over random operation sequences")
struct InvariantTests {
    /// One random step: an insert (sometimes unique, sometimes delayed), a claim, a completion or
    /// failure (sometimes with a stale token), a cancel, retry, rescue, prune, update, delete, a
    /// batch of several in one transaction; or a random pipeline enqueued, cancelled, retried,
    /// deleted or pruned (the job operations above also hit pipeline steps).
    func step(_ store: JobRepository, _ random: inout SplitMix64, _ owners: inout [JobID: OwnerToken]) throws {
        func anyJob(_ state: JobState? = nil) throws -> Job? {
            var candidates: [Job] = []
            try store.forEachJob { job in
                if state == nil || job.state == state { candidates.append(job) }
                return true
            }
            return candidates.isEmpty ? nil : candidates[Int(random.next() % UInt64(candidates.count))]
        }
        func anyPipeline() throws -> Pipeline? {
            let all = try store.pipelines(limit: 1000).pipelines
            return all.isEmpty ? nil : all[Int(random.next() % UInt64(all.count))]
        }
        let now = Timestamp.now
        switch random.next() % 17 {
        case 0, 1, 2:
            let count = Int(random.next() % 4) + 1
            let jobs = (0..<count).map { _ in
                var job = NewJob(
                    name: "job", queue: "q\(random.next() % 3)", payload: Array(repeating: 1, count: Int(random.next() % 50)),
                    priority: UInt8(random.next() % 4), runAt: random.next() % 5 == 0 ? now.adding(.seconds(3600)) : nil,
                    maxAttempts: UInt16(random.next() % 3 + 1), uniqueKey: random.next() % 4 == 0 ? "u\(random.next() % 3)" : nil)
                // Sometimes a chosen id and creation time from the past: below the end of the
                // records and of the creation-time index, which new ids and times append to.
                if random.next() % 4 == 0 {
                    let past = now.adding(.seconds(-Int64(random.next() % 10_000)))
                    job.id = JobID(milliseconds: UInt64(past.microseconds / 1000), counter: 0, random: random.next())
                    job.createdAt = past
                }
                return job
            }
            try store.insert(jobs)
        case 3, 4:
            let owner = OwnerToken.random()
            let queue = random.next() % 2 == 0 ? nil : "q\(random.next() % 3)"
            let lease: Duration = random.next() % 3 == 0 ? .microseconds(1) : .seconds(600)
            for job in try store.claim(queue: queue, limit: Int(random.next() % 3) + 1, lease: lease, owner: owner) {
                owners[job.id] = owner
            }
        case 5:
            if let job = try anyJob(.running), let owner = owners[job.id] {
                _ = try? store.complete(job.id, owner: random.next() % 5 == 0 ? .random() : owner, result: [1, 2])
            }
        case 6:
            if let job = try anyJob(.running), let owner = owners[job.id] {
                _ = try? store.fail(job.id, owner: owner, error: "boom", retryAt: random.next() % 2 == 0 ? now : nil)
            }
        case 7:
            if let job = try anyJob() { _ = try? store.cancel(job.id) }
        case 8:
            if let job = try anyJob() { _ = try? store.retry(job.id) }
        case 9:
            _ = try store.rescueExpiredLeases()
        case 10:
            let state = [JobState.succeeded, .failed, .cancelled][Int(random.next() % 3)]
            _ = try store.prune(state: state, createdBefore: now, batchSize: 2)
        case 11:
            if let job = try anyJob() {
                _ = try? store.update(job.id) { job in
                    job.priority = UInt8(random.next() % 4)
                    job.queue = "q\(random.next() % 3)"
                }
            }
        case 13, 14:
            // A random DAG: each step depends on a random subset of the earlier ones.
            let count = Int(random.next() % 7) + 1
            let steps = (0..<count).map { index in
                PipelineStep(
                    "s\(index)",
                    job: NewJob(name: "step", queue: "q\(random.next() % 3)", maxAttempts: UInt16(random.next() % 2 + 1)),
                    dependsOn: (0..<index).filter { _ in random.next() % 3 == 0 }.map { "s\($0)" })
            }
            try store.enqueue(PipelineDefinition(name: "random", steps: steps, failFast: random.next() % 4 == 0))
        case 15:
            if let pipeline = try anyPipeline() {
                _ = try? (random.next() % 2 == 0 ? store.cancelPipeline(pipeline.id) : store.retryPipeline(pipeline.id))
            }
        case 16:
            if random.next() % 2 == 0, let pipeline = try anyPipeline() {
                try store.deletePipeline(pipeline.id)
            } else {
                let state = [PipelineState.succeeded, .failed, .cancelled][Int(random.next() % 3)]
                _ = try store.prunePipelines(state: state, createdBefore: now, batchSize: 2)
            }
        default:
            if let job = try anyJob() {
                // Several changes in one transaction, one of which may be illegal and abort them all.
                _ = try? store.write { txn in
                    try txn.delete(job.id)
                    try txn.insert(NewJob(name: "replacement", queue: job.queue))
                    if random.next() % 2 == 0 { _ = try txn.transition(job.id, to: .running) }  // job is gone: notFound, all rolled back
                }
            }
        }
    }

    /// Counts by a full scan of the records, to compare with the O(1) counters.
    func recount(_ store: JobRepository) throws -> [JobState: Int] {
        var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
        try store.forEachJob { job in
            counts[job.state, default: 0] += 1
            return true
        }
        return counts
    }

    @Test("after every step, verify() is clean and the counters equal a recount", arguments: [1, 2, 3, 4] as [UInt64])
    func randomSequences(seed: UInt64) throws {
        try withStore() { store in
            var random = SplitMix64(seed: seed)
            var owners: [JobID: OwnerToken] = [:]
            var pipelineStatesSeen = Set<PipelineState>()
            for index in 0..<200 {
                try step(store, &random, &owners)
                let problems = try store.verify()
                #expect(problems.isEmpty, "seed \(seed), step \(index): \(problems.prefix(3))")
                #expect(try store.counts() == recount(store), "seed \(seed), step \(index)")
                if !problems.isEmpty { return }
                for (state, count) in try store.pipelineCounts() where count > 0 { pipelineStatesSeen.insert(state) }
                // The cache agrees with LMDB.
                try store.forEachJob { job throws in
                    #expect(try store.job(job.id) == job)
                    return true
                }
            }
            // Some pipeline finished: the sequence did advance them.
            #expect(pipelineStatesSeen.count >= 2, "seed \(seed): pipeline states seen: \(pipelineStatesSeen)")
        }
    }

    @Test("verify() finds a missing index entry, a stray one and a wrong counter")
    func verifyDetectsDamage() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(name: "a"))
            try store.environment.write { txn in
                try txn.delete(store.db.readyAny, Keys.readyAny(job.priority, job.runAt, job.id))
                try txn.put(store.db.lease, Keys.lease(.now, job.id), ())
                try txn.put(store.db.meta, MetaKey.stateCounter(.failed), Counters.encode(3))
            }
            let kinds = try store.verify().map(\.kind)
            #expect(kinds.contains(.missingIndexEntry))
            #expect(kinds.contains(.strayIndexEntry))
            #expect(kinds.contains(.wrongCounter))
        }
    }

    @Test("verify() in chunks finds the same problems as in one pass, each once")
    func chunkedVerifyFindsTheSame() throws {
        try withStore() { store in
            let jobs = try store.insert((0..<50).map { NewJob(name: "j\($0)", queue: "q\($0 % 3)") })
            try store.environment.write { txn in
                try txn.delete(store.db.created, Keys.created(jobs[7].createdAt, jobs[7].id))
                try txn.put(store.db.lease, Keys.lease(.now, jobs[20].id), ())
                try txn.put(store.db.meta, MetaKey.stateCounter(.failed), Counters.encode(3))
            }
            let whole = try store.verify(chunkSize: 1_000_000)
            let chunked = try store.verify(chunkSize: 1)
            #expect(whole.count == 3)
            #expect(Set(chunked) == Set(whole) && chunked.count == whole.count)
        }
    }

    @Test("verify() on a store being written reports nothing: what a chunk saw mid-change is checked again")
    func verifyWhileWriting() throws {
        try withStore() { store in
            try store.insert((0..<1000).map { NewJob(name: "j\($0)", queue: "q\($0 % 4)") })
            let stop = StopFlag()
            let writer = Thread.detachedResult {
                let owner = OwnerToken.random()
                var rounds = 0
                while !stop.isSet {
                    try store.write { txn in
                        try txn.insert((0..<20).map { NewJob(name: "more-\(rounds)-\($0)", queue: "q\($0 % 4)") })
                        for job in try txn.claim(limit: 10, lease: .seconds(60), owner: owner) { try txn.complete(job.id, owner: owner) }
                    }
                    rounds += 1
                }
                return rounds
            }
            var runs = 0
            while runs < 3 {
                let problems = try store.verify(chunkSize: 128)
                #expect(problems.isEmpty, "verify under writes reported: \(problems.prefix(3))")
                runs += 1
            }
            stop.set()
            #expect(try writer.value() > 0)
            try expectConsistent(store)
        }
    }
}
