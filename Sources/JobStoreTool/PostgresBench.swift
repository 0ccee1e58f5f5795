#if Postgres
import Foundation
import JobScheduler
import JobStore
import JobStorePostgres

/// `jobstore bench --backend postgres`: the JobBench workload on the PostgreSQL backend, phase
/// by phase as ``BenchRunner`` runs it on the embedded store, through the backend's public API
/// (each call its own transaction, as a program would make it). Full durability is
/// `synchronous_commit` on, relaxed off. `get-cached` is left out: the PostgreSQL backend
/// keeps no cache in the process.
struct PostgresBenchRunner: BenchReporting {
    let n: Int
    let durability: Bench.BenchDurability
    let storeName = "jobstore-postgres"
    let store: PostgresJobStore
    /// Jobs numbered 0 ..< total exist.
    var total = 0
    var claimedIDs: Set<JobID> = []

    /// Opens the store at `url`, which must hold no jobs (the workload's checks count them all).
    init(jobs: Int, durability: Bench.BenchDurability, url: String, history: Bool) async throws {
        n = jobs
        self.durability = durability
        var options = PostgresStoreOptions()
        options.synchronousCommit = durability == .full
        options.recordsHistory = history
        store = try await PostgresJobStore(url: url, options: options)
        let existing = try await store.counts().values.reduce(0, +)
        if existing > 0 {
            await store.close()
            throw BenchCheckFailure(
                description: "the database at \(store.location) holds \(existing) jobs; give a new, empty database (e.g. `createdb jobbench`)")
        }
    }

    mutating func run(_ phase: Bench.Phase) async throws {
        switch phase {
        case .load: try await load()
        case .insertSingle: try await insertSingle()
        case .insertConcurrent: try await insertConcurrent()
        case .get: try await get()
        case .pendingOldest: try await pendingOldest()
        case .countByState: try await countByState()
        case .timeRange: try await timeRange()
        case .scanFilter: try await scanFilter()
        case .transition: try await transition()
        case .transitionBatch: try await transitionBatch()
        case .claim: try await claim()
        case .claimBatch: try await claimBatch()
        case .claimConcurrent: try await claimConcurrent()
        case .getCached, .getCachedWriting, .pipelines:
            FileHandle.standardError.write(Data("\(phase.rawValue): not run on PostgreSQL (the embedded store's cache and pipeline figures)\n".utf8))
        }
    }

    mutating func load() async throws {
        var elapsed = 0.0
        for start in stride(from: 0, to: n, by: 1000) {
            let batch = (start..<min(n, start + 1000)).map { JobBenchWorkload.job($0) }
            elapsed += try await timed { try await store.restore(batch) }
        }
        total = n
        emit("load", ops: n, seconds: elapsed)
    }

    mutating func insertSingle() async throws {
        let count = scaled(10_000)
        var latencies: [Double] = []
        for number in total..<total + count {
            let job = JobBenchWorkload.newJob(number)
            latencies.append(try await timed { try await store.insert(job) } * 1e6)
        }
        total += count
        emit("insert-single", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    mutating func insertConcurrent() async throws {
        let count = scaled(20_000)
        let store = store
        try await insertConcurrently(first: total, count: count) { try await store.insert($0) }
        total += count
    }

    func get() async throws {
        let count = scaled(1_000_000)
        var stream = JobBenchWorkload.Stream(seed: 1001)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        var missing = 0
        for _ in 0..<count {
            let id = JobBenchWorkload.id(stream.next(below: total))
            var found: Job?
            latencies.append(try await timed { found = try await store.job(id) } * 1e6)
            if found == nil { missing += 1 }
        }
        guard missing == 0 else { throw BenchCheckFailure(description: "get: \(missing) ids not found") }
        emit("get", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    func pendingOldest() async throws {
        let count = scaled(10_000)
        var latencies: [Double] = []
        var rows = 0
        for _ in 0..<count {
            var page: JobPage?
            latencies.append(try await timed { page = try await store.jobs(in: .pending, limit: 100) } * 1e6)
            rows += page?.jobs.count ?? 0
        }
        guard rows == count * min(100, try await store.count(.pending)) else {
            throw BenchCheckFailure(description: "pending-oldest returned \(rows) rows for \(count) queries")
        }
        emit("pending-oldest", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    func countByState() async throws {
        let count = scaled(10_000)
        var sum = 0
        let elapsed = try await timed {
            for _ in 0..<count { sum += try await store.counts().values.reduce(0, +) }
        }
        guard sum == count * total else { throw BenchCheckFailure(description: "count-by-state summed \(sum), expected \(count * total)") }
        emit("count-by-state", ops: count, seconds: elapsed)
    }

    func timeRange() async throws {
        let queries = scaled(1000)
        let window = n / 100
        var stream = JobBenchWorkload.Stream(seed: 1002)
        var rows = 0
        let elapsed = try await timed {
            for _ in 0..<queries {
                let first = stream.next(below: n - window + 1)
                rows += try await store.jobIDs(
                    createdFrom: JobBenchWorkload.createdAt(first), until: JobBenchWorkload.createdAt(first + window)).count
            }
        }
        emit("time-range", ops: rows, seconds: elapsed, extra: [("queries", "\(queries)"), ("rows_per_query", format(Double(rows) / Double(queries), 1))])
    }

    /// The full scan: every row's state counted by the server (``PostgresJobStore/recount()``).
    func scanFilter() async throws {
        let queries = 10
        var found = 0
        let elapsed = try await timed {
            for _ in 0..<queries { found += try await store.recount()[.pending] ?? 0 }
        }
        let pending = try await store.count(.pending)
        guard found == queries * pending else {
            throw BenchCheckFailure(description: "scan-filter found \(found / queries) pending jobs, the counter says \(pending)")
        }
        emit("scan-filter", ops: queries, seconds: elapsed)
    }

    /// Draws job numbers from `stream` until one is in `state` (reads not timed).
    func randomJob(in state: JobState, _ stream: inout JobBenchWorkload.Stream, excluding: Set<JobID> = []) async throws -> JobID {
        guard try await store.count(state) > excluding.count else {
            throw BenchCheckFailure(description: "no \(state) job is left to pick; run the phases before this one too (e.g. transition before transition-batch)")
        }
        while true {
            let id = JobBenchWorkload.id(stream.next(below: total))
            if !excluding.contains(id), try await store.job(id)?.state == state { return id }
        }
    }

    func transition() async throws {
        let count = scaled(20_000)
        var stream = JobBenchWorkload.Stream(seed: 1003)
        var latencies: [Double] = []
        for _ in 0..<count {
            let id = try await randomJob(in: .pending, &stream)
            latencies.append(try await timed { try await store.transition(id, to: .running) } * 1e6)
        }
        emit("transition", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    func transitionBatch() async throws {
        let count = scaled(50_000)
        var stream = JobBenchWorkload.Stream(seed: 1004)
        var elapsed = 0.0
        var done = 0
        while done < count {
            var batch: [JobID] = []
            var chosen: Set<JobID> = []
            while batch.count < min(100, count - done) {
                let id = try await randomJob(in: .running, &stream, excluding: chosen)
                chosen.insert(id)
                batch.append(id)
            }
            let ids = batch
            elapsed += try await timed { try await store.transition(ids, to: .succeeded) }
            done += batch.count
        }
        emit("transition-batch", ops: count, seconds: elapsed)
    }

    mutating func claim() async throws {
        let count = scaled(20_000)
        var latencies: [Double] = []
        var claimed: [JobID] = []
        for _ in 0..<count {
            let owner = OwnerToken.random()
            latencies.append(try await timed {
                guard let job = try await store.claim(limit: 1, lease: .seconds(300), owner: owner).first else {
                    throw BenchCheckFailure(description: "claim found no ready job")
                }
                try await store.complete(job.id, owner: owner)
                claimed.append(job.id)
            } * 1e6)
        }
        try await checkClaimed(claimed, phase: "claim")
        emit("claim", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    /// Claims 100 per transaction, and completes them 100 per transaction (the scheduler's
    /// batched finish, ``PostgresJobStore/finish(_:claiming:lease:owner:)``).
    mutating func claimBatch() async throws {
        let count = scaled(40_000)
        var claimed: [JobID] = []
        let elapsed = try await timed {
            while claimed.count < count {
                let owner = OwnerToken.random()
                let jobs = try await store.claim(limit: min(100, count - claimed.count), lease: .seconds(300), owner: owner)
                guard !jobs.isEmpty else { throw BenchCheckFailure(description: "claim-batch ran out of ready jobs") }
                let outcomes = jobs.map { JobOutcome(id: $0.id, owner: owner, kind: .succeeded(result: nil)) }
                let response = try await store.finish(outcomes, claiming: [], lease: .seconds(300), owner: owner)
                guard response.finished.allSatisfy({ $0 != nil }) else { throw BenchCheckFailure(description: "claim-batch: a lease was lost") }
                claimed += jobs.map(\.id)
            }
        }
        try await checkClaimed(claimed, phase: "claim-batch")
        emit("claim-batch", ops: count, seconds: elapsed)
    }

    mutating func claimConcurrent() async throws {
        let count = scaled(20_000)
        let store = store
        let (claimed, wall) = try await claimConcurrently(count: count) { owner in
            while true {
                // From every queue, a job another worker takes at the same instant is skipped:
                // an empty answer while jobs are ready is a lost race, not the end.
                guard let job = try await store.claim(limit: 1, lease: .seconds(300), owner: owner).first else {
                    guard try await store.count(.pending) > 0 else { throw BenchCheckFailure(description: "claim-concurrent found no ready job") }
                    continue
                }
                try await store.complete(job.id, owner: owner)
                return job.id
            }
        }
        try await checkClaimed(claimed, phase: "claim-concurrent")
        emit("claim-concurrent", ops: count, seconds: wall)
    }

    /// Every claimed job was claimed exactly once (in this phase and before) and is succeeded.
    mutating func checkClaimed(_ ids: [JobID], phase: String) async throws {
        let unique = Set(ids)
        guard unique.count == ids.count, unique.isDisjoint(with: claimedIDs) else {
            throw BenchCheckFailure(description: "\(phase): a job was claimed twice")
        }
        for id in ids where try await store.job(id)?.state != .succeeded {
            throw BenchCheckFailure(description: "\(phase): claimed job \(id) is not succeeded")
        }
        claimedIDs.formUnion(unique)
    }

    /// The per-state counters equal a recount of the rows; then the size and memory lines.
    func finish() async throws {
        let counters = try await store.counts()
        let recount = try await store.recount()
        guard counters == recount else {
            throw BenchCheckFailure(description: "counters \(counters) differ from a recount \(recount)")
        }
        emitSize(bytes: try await store.storageBytes(), total: total)
    }
}
#endif
