import ArgumentParser
import Foundation
import Synchronization
import JobStore

/// `jobstore bench`: the JobBench workload (docs/JOBBENCH.md), one JSON object per phase.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the JobBench workload on a fresh store and print one JSON line per phase.",
        discussion: """
            Phases, in order (load always runs): \(Phase.allCases.map(\.rawValue).joined(separator: ", ")).
            Counts are those of the workload for --jobs 1000000 and scale with --jobs.
            The run fails (exit 1) when a correctness check fails.
            """)

    enum Phase: String, CaseIterable {
        case load, insertSingle = "insert-single", insertConcurrent = "insert-concurrent", get, getCached = "get-cached"
        /// Not in the JobBench workload: get-cached while 8 tasks insert (the cache under its own process's writes).
        case getCachedWriting = "get-cached-writing"
        case pendingOldest = "pending-oldest", countByState = "count-by-state", timeRange = "time-range"
        case scanFilter = "scan-filter", transition, transitionBatch = "transition-batch", claim
        case claimBatch = "claim-batch", claimConcurrent = "claim-concurrent"
        /// Not in the JobBench workload: pipelines of 100, 1,000 and 10,000 steps validated,
        /// enqueued and run to the end (a chain and a fan-out/fan-in), per step.
        case pipelines
    }

    enum BenchDurability: String, ExpressibleByArgument, CaseIterable {
        case full, relaxed
        var lmdb: Durability { self == .full ? .full : .noSync }
    }

    @Option(parsing: .unconditional, help: "Jobs to load (the workload's N).")
    var jobs = 1_000_000

    @Option(parsing: .unconditional, help: "full: every commit durable when it returns; relaxed: commits not flushed (MDB_NOSYNC).")
    var durability = BenchDurability.full

    @Option(parsing: .unconditional, help: "Directory for a fresh store (created; refused if it already holds one). Not with --backend postgres.")
    var dir = ""

    @Option(parsing: .unconditional, help: "Comma-separated phases to run after load (default: all).")
    var phases: String?

    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Run each selected read phase (get, get-cached, pending-oldest, count-by-state, time-range, scan-filter) this many times, a line each: for profiling one path.")
    var repetitions = 1

    @Flag(help: "Open the store with MDB_WRITEMAP (EnvironmentOptions.writeMap); its lines say store \"jobstore-writemap\".")
    var writeMap = false

    @Flag(help: "Instead of JobBench: insert --jobs no-op jobs, then burn them down with the scheduler (per --concurrency), printing jobs/s every 2 s and a JSON summary.")
    var burndown = false

    @Option(parsing: .unconditional, help: "With --burndown: comma-separated handler counts, one run each.")
    var concurrency = "1,8"

    @Option(parsing: .unconditional, help: "With --burndown: jobs claimed beyond the free handlers (default: the concurrency).")
    var prefetch: Int?

    @Option(parsing: .unconditional, help: "With --burndown: instead of inserting first, a producer inserts this many jobs/s (one per commit) for --seconds while the scheduler works; reports enqueue-to-start latency.")
    var producerRate: Int?

    @Option(parsing: .unconditional, help: "With --producer-rate: how long the producer runs.")
    var seconds = 10

    @Option(parsing: .unconditional, help: "With --burndown: instead, run an idle scheduler this many seconds and report the CPU time it used.")
    var idle: Int?

    /// Which store a burn-down runs on.
    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case lmdb, postgres
    }

    @Option(parsing: .unconditional, help: "lmdb (the embedded store in --dir) or postgres (the PostgreSQL backend at --url; needs a build with --traits Postgres): JobBench or, with --burndown, the burn-down. On PostgreSQL full durability is synchronous_commit on, relaxed off.")
    var backend = Backend.lmdb

    @Option(parsing: .unconditional, help: "With --backend postgres: the database, e.g. postgres://user@localhost:5432/bench (it must hold no jobs; JobBench leaves its jobs there, the burn-down deletes them).")
    var url: String?

    @Flag(help: "With --backend postgres: record no event history (PostgresStoreOptions.recordsHistory off), to measure what it costs.")
    var noHistory = false

    @Flag(help: "With --burndown: typed jobs (a JobDefinition, JSON parameters encoded at enqueue and decoded for the handler) instead of untyped ones carrying the same bytes, to measure what the coding costs.")
    var typed = false

    func validate() throws {
        guard Validation.enabled else { return }
        guard jobs >= 1000 else { throw ValidationError("--jobs must be at least 1000") }
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        if backend == .postgres {
            guard url != nil else { throw ValidationError("--backend postgres needs --url postgres://user@host:port/database") }
            guard producerRate == nil, idle == nil else { throw ValidationError("--producer-rate and --idle run on the embedded store only") }
        }
        if let phases {
            for name in phases.split(separator: ",") where Phase(rawValue: String(name)) == nil {
                throw ValidationError("unknown phase '\(name)'; phases: \(Phase.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if backend == .lmdb && dir.isEmpty { throw ValidationError("give --dir, a directory for a fresh store") }
        if typed && (!burndown || producerRate != nil || idle != nil) {
            throw ValidationError("--typed is for the burn-down itself (--burndown, without --producer-rate or --idle)")
        }
        if backend == .lmdb && noHistory { throw ValidationError("--no-history is for --backend postgres (the embedded store always records its history)") }
        if !dir.isEmpty { try requireFreshStoreDirectory(dir) }
    }

    func run() async throws {
        if burndown {
            let counts = concurrency.split(separator: ",").compactMap { Int($0) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--concurrency takes positive counts, e.g. 1,8") }
            try await Burndown(
                jobs: jobs, durability: durability, dir: dir, concurrencies: counts, prefetch: prefetch, producerRate: producerRate,
                seconds: seconds, idleSeconds: idle, postgresURL: backend == .postgres ? url : nil, noHistory: noHistory, typed: typed
            ).run()
            return
        }
        let workload = Phase.allCases.filter { $0 != .getCachedWriting && $0 != .pipelines }
        let selected = Set((phases ?? workload.map(\.rawValue).joined(separator: ",")).split(separator: ",").compactMap { Phase(rawValue: String($0)) })
        if backend == .postgres, let url {
            try await runOnPostgres(url: url, selected: selected)
            return
        }
        var runner = try BenchRunner(jobs: jobs, durability: durability, dir: dir, writeMap: writeMap)
        defer { runner.store.close() }
        let reads: Set<Phase> = [.get, .getCached, .pendingOldest, .countByState, .timeRange, .scanFilter]
        for phase in Phase.allCases where phase == .load || selected.contains(phase) {
            for _ in 0..<(reads.contains(phase) ? repetitions : 1) { try await runner.run(phase) }
            // Untimed: flush what a relaxed phase left to the kernel, so the next phase does not
            // pay for this one's deferred writeback.
            try runner.store.sync()
        }
        try runner.finalChecks()
        runner.emitSize()
    }

    /// JobBench on the PostgreSQL backend (``PostgresBenchRunner``).
    func runOnPostgres(url: String, selected: Set<Phase>) async throws {
        #if Postgres
        var runner = try await PostgresBenchRunner(jobs: jobs, durability: durability, url: url, history: !noHistory)
        do {
            for phase in Phase.allCases where phase == .load || selected.contains(phase) {
                // Progress on stderr: a phase here takes minutes where it takes seconds on LMDB.
                FileHandle.standardError.write(Data("\(phase.rawValue)…\n".utf8))
                try await runner.run(phase)
            }
            FileHandle.standardError.write(Data("checks…\n".utf8))
            try await runner.finish()
            FileHandle.standardError.write(Data("closing…\n".utf8))
            await runner.store.close()
        } catch {
            await runner.store.close()
            throw error
        }
        #else
        throw ValidationError("this jobstore was built without the PostgreSQL backend: build it with --traits Postgres")
        #endif
    }
}

/// A failed correctness check: the run exits 1.
struct BenchCheckFailure: Error, CustomStringConvertible {
    let description: String
}

/// What every bench runner (one per backend) shares: the workload's scaling, the timing, and
/// the JSON line per phase.
protocol BenchReporting {
    /// The workload's N.
    var n: Int { get }
    var durability: Bench.BenchDurability { get }
    /// The `store` field of each line.
    var storeName: String { get }
}

extension BenchReporting {
    /// A count of the workload scaled to N.
    func scaled(_ count: Int) -> Int { max(1, Int((Double(count) * Double(n) / 1_000_000).rounded())) }

    func emit(_ phase: String, ops: Int, seconds: Double, latencies: [Double]? = nil, extra: [(String, String)] = []) {
        var fields: [(String, String)] = [
            ("store", "\"\(storeName)\""), ("phase", "\"\(phase)\""), ("jobs", "\(n)"), ("durability", "\"\(durability.rawValue)\""),
            ("ops", "\(ops)"), ("seconds", format(seconds, 4)), ("ops_per_s", format(seconds > 0 ? Double(ops) / seconds : 0, 0)),
        ]
        if var latencies, !latencies.isEmpty {
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            fields += [("p50_us", format(percentile(0.5), 2)), ("p99_us", format(percentile(0.99), 2))]
        }
        fields += extra
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    /// The `size` (bytes on disk, per job of `total`) and `rss` (peak resident memory of this process) lines.
    func emitSize(bytes: Int, total: Int) {
        emit("size", ops: total, seconds: 0, extra: [("bytes", "\(bytes)"), ("bytes_per_job", format(Double(bytes) / Double(max(1, total)), 1))])
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        emit("rss", ops: 0, seconds: 0, extra: [("bytes", "\(usage.ru_maxrss * 1024)")])
    }

    func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    /// The insert-concurrent phase's driver: 8 producer tasks insert jobs `first ..< first + count`
    /// (each insert its own call to `insert`); emits the line.
    func insertConcurrently(first: Int, count: Int, _ insert: @escaping @Sendable (NewJob) async throws -> Void) async throws {
        let start = monotonicSeconds()
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for producer in 0..<8 {
                group.addTask {
                    var latencies: [Double] = []
                    for number in stride(from: first + producer, to: first + count, by: 8) {
                        let job = JobBenchWorkload.newJob(number)
                        let began = monotonicSeconds()
                        try await insert(job)
                        latencies.append((monotonicSeconds() - began) * 1e6)
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        emit("insert-concurrent", ops: count, seconds: monotonicSeconds() - start, latencies: latencies)
    }

    /// The claim-concurrent phase's driver: 8 worker tasks, each with its own owner token, call
    /// `claimAndComplete` (one claim and its completion, each its own call) until `count` jobs
    /// are done between them. Returns the claimed ids and the wall time.
    func claimConcurrently(count: Int, _ claimAndComplete: @escaping @Sendable (OwnerToken) async throws -> JobID) async throws -> ([JobID], Double) {
        let start = monotonicSeconds()
        let claimed = try await withThrowingTaskGroup(of: [JobID].self) { group in
            for worker in 0..<8 {
                let share = count / 8 + (worker < count % 8 ? 1 : 0)
                group.addTask {
                    let owner = OwnerToken.random()
                    var mine: [JobID] = []
                    while mine.count < share { mine.append(try await claimAndComplete(owner)) }
                    return mine
                }
            }
            var all: [JobID] = []
            for try await part in group { all += part }
            return all
        }
        return (claimed, monotonicSeconds() - start)
    }

    /// Times `body`, in seconds.
    func timed(_ body: () throws -> Void) rethrows -> Double {
        let start = monotonicSeconds()
        try body()
        return monotonicSeconds() - start
    }

    /// Times `body`, in seconds.
    func timed(_ body: () async throws -> Void) async rethrows -> Double {
        let start = monotonicSeconds()
        try await body()
        return monotonicSeconds() - start
    }
}

/// `CLOCK_MONOTONIC` in seconds: the clock read the C peers time every operation with (their
/// `mono()`). `ContinuousClock.measure` and `Duration` arithmetic (a protocol witness, 128-bit
/// multiplies) cost about 0.11 µs more per timed operation (measured: 207 against 94 ns), which a
/// microsecond phase would count as JobStore's.
@inline(__always)
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

struct BenchRunner: BenchReporting {
    let n: Int
    /// "jobstore", or "jobstore-writemap" with `--write-map` (a store of its own in the tables).
    let storeName: String
    let durability: Bench.BenchDurability
    let dir: String
    let store: JobRepository
    /// Jobs numbered 0 ..< total exist.
    var total: Int
    var claimedIDs: Set<JobID> = []

    init(jobs: Int, durability: Bench.BenchDurability, dir: String, writeMap: Bool) throws {
        n = jobs
        storeName = writeMap ? "jobstore-writemap" : "jobstore"
        self.durability = durability
        self.dir = dir
        var options = JobStoreOptions(durability: durability.lmdb, mapSize: 1 << 32)
        options.environment.writeMap = writeMap
        options.cache = CacheOptions(enabled: true, maxEntries: jobs + jobs / 10, maxBytes: 2 << 30)
        store = try JobRepository(path: dir, options: options)
        total = 0
    }

    // MARK: Phases

    /// Runs one phase. The synchronous phases are `@inline(never)`, so each is a function of its
    /// own that `scripts/instructions.sh` can count (callgrind's `--toggle-collect`).
    mutating func run(_ phase: Bench.Phase) async throws {
        switch phase {
        case .load: try load()
        case .insertSingle: try insertSingle()
        case .insertConcurrent: try await insertConcurrent()
        case .get: try get(cached: false)
        case .getCached: try get(cached: true)
        case .getCachedWriting: try await getCachedWhileWriting()
        case .pendingOldest: try pendingOldest()
        case .countByState: try countByState()
        case .timeRange: try timeRange()
        case .scanFilter: try scanFilter()
        case .transition: try transition()
        case .transitionBatch: try transitionBatch()
        case .claim: try claim()
        case .claimBatch: try claimBatch()
        case .claimConcurrent: try await claimConcurrent()
        case .pipelines: try pipelines()
        }
    }

    /// Per shape (chain, fan-out/fan-in) and size (100, 1,000, 10,000 steps): the median over
    /// several runs of validation (``PipelinePlan``), of the enqueue transaction, and of running
    /// every step (claim + complete, which advances the pipeline) in one transaction; each also
    /// per step, to show the costs grow linearly; and, as a baseline, as many plain jobs claimed
    /// and completed the same way. The pipelines and jobs are deleted afterwards.
    func pipelines() throws {
        for shape in ["chain", "fan"] {
            for size in [100, 1_000, 10_000] {
                let definition = PipelineDefinition(name: "bench-\(shape)", steps: (0..<size).map { index in
                    let dependsOn: [String] = switch (shape, index) {
                    case (_, 0): []
                    case ("chain", _): ["s\(index - 1)"]
                    case (_, size - 1): (1..<size - 1).map { "s\($0)" }
                    default: ["s0"]
                    }
                    return PipelineStep("s\(index)", job: NewJob(name: "step", queue: "bench-pipelines", maxAttempts: 1), dependsOn: dependsOn)
                })
                var validate: [Double] = []
                var enqueue: [Double] = []
                var runSteps: [Double] = []
                var runPlain: [Double] = []
                for _ in 0..<max(3, 30_000 / size) {
                    // The baseline: as many plain jobs, claimed and completed the same way.
                    try store.write { txn in
                        for _ in 0..<size { try txn.insert(NewJob(name: "plain", queue: "bench-plain", maxAttempts: 1)) }
                    }
                    let plainOwner = OwnerToken.random()
                    var plain: [JobID] = []
                    runPlain.append(try timed {
                        try store.write { txn in
                            while let job = try txn.claim(queue: "bench-plain", lease: .seconds(60), owner: plainOwner).first {
                                try txn.complete(job.id, owner: plainOwner)
                                plain.append(job.id)
                            }
                        }
                    })
                    let done = plain
                    try store.write { txn in for id in done { try txn.delete(id) } }

                    var plan: PipelinePlan?
                    validate.append(try timed { plan = try PipelinePlan(validating: definition) })
                    guard let plan else { throw BenchCheckFailure(description: "pipelines: no plan") }
                    var pipeline: Pipeline?
                    enqueue.append(try timed { pipeline = try store.write { try $0.enqueue(plan) } })
                    let owner = OwnerToken.random()
                    var ran = 0
                    runSteps.append(try timed {
                        try store.write { txn in
                            while let job = try txn.claim(queue: "bench-pipelines", lease: .seconds(60), owner: owner).first {
                                try txn.complete(job.id, owner: owner)
                                ran += 1
                            }
                        }
                    })
                    guard let id = pipeline?.id, ran == size, try store.pipeline(id)?.state == .succeeded else {
                        throw BenchCheckFailure(description: "pipelines: a \(shape) of \(size) steps ran \(ran) steps and did not succeed")
                    }
                    try store.deletePipeline(id)
                }
                func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
                let (v, e, r, p) = (median(validate), median(enqueue), median(runSteps), median(runPlain))
                emit("pipelines-\(shape)-\(size)", ops: size, seconds: v + e, extra: [
                    ("runs", "\(validate.count)"),
                    ("validate_us", format(v * 1e6, 1)), ("enqueue_us", format(e * 1e6, 1)), ("run_us", format(r * 1e6, 1)),
                    ("validate_us_per_step", format(v * 1e6 / Double(size), 3)), ("enqueue_us_per_step", format(e * 1e6 / Double(size), 3)),
                    ("run_us_per_step", format(r * 1e6 / Double(size), 3)),
                    ("plain_run_us_per_job", format(p * 1e6 / Double(size), 3)),
                ])
            }
        }
    }

    @inline(never)
    mutating func load() throws {
        var elapsed = 0.0
        var start = 0
        while start < n {
            let batch = (start..<min(n, start + 1000)).map { JobBenchWorkload.job($0) }
            elapsed += try timed { try store.write { txn in for job in batch { try txn.restore(job) } } }
            start += 1000
        }
        total = n
        emit("load", ops: n, seconds: elapsed)
    }

    @inline(never)
    mutating func insertSingle() throws {
        let count = scaled(10_000)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        for number in total..<total + count {
            let job = JobBenchWorkload.newJob(number)
            latencies.append(try timed { try store.insert(job) } * 1e6)
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

    @inline(never)
    func get(cached: Bool) throws {
        let count = scaled(1_000_000)
        var stream = JobBenchWorkload.Stream(seed: 1001)
        let ids = (0..<count).map { _ in JobBenchWorkload.id(stream.next(below: total)) }
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        var missing = 0
        if cached { missing += try warmCache(ids) }
        let before = store.cacheStatistics
        for id in ids {
            var found: Job?
            let took = try timed { found = cached ? try store.job(id) : try store.uncachedJob(id) }
            if found == nil { missing += 1 }
            latencies.append(took * 1e6)
        }
        if missing > 0 { print("warning: \(missing) ids not found") }
        let after = store.cacheStatistics
        var extra: [(String, String)] = []
        if cached {
            let hits = after.hits - before.hits
            extra.append(("hit_rate", format(Double(hits) / Double(count), 4)))
        }
        emit(cached ? "get-cached" : "get", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies, extra: extra)
    }

    /// get-cached's untimed first pass, which fills the cache; its own function so that
    /// `scripts/instructions.sh` can leave it out. Returns how many ids were not found.
    @inline(never)
    func warmCache(_ ids: [JobID]) throws -> Int {
        var missing = 0
        for id in ids where try store.job(id) == nil { missing += 1 }
        return missing
    }

    /// get-cached while 8 tasks insert jobs through the async writer: the figure is the hit rate
    /// of reads of jobs nobody writes (it stays near 1 unless the process's own commits drop
    /// the cache). Not part of JobBench (run it with --phases); the inserted jobs are deleted after.
    mutating func getCachedWhileWriting() async throws {
        let count = scaled(1_000_000)
        var stream = JobBenchWorkload.Stream(seed: 1002)
        let ids = (0..<count).map { _ in JobBenchWorkload.id(stream.next(below: total)) }
        for id in ids where try store.job(id) == nil { throw BenchCheckFailure(description: "get-cached-writing: job \(id) not found") }
        let before = store.cacheStatistics
        let store = self.store
        let stop = StopSignal()
        let writers = (0..<8).map { writer in
            Task {
                var written: [JobID] = []
                while !stop.isSet {
                    written.append(try await store.insert(NewJob(name: "writer-\(writer)", queue: "bench-writes")).id)
                }
                return written
            }
        }
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        for id in ids {
            let took = try timed { _ = try store.job(id) }
            latencies.append(took * 1e6)
        }
        stop.set()
        var written: [JobID] = []
        for writer in writers { written += try await writer.value }
        let after = store.cacheStatistics
        // Leave the store as the workload expects it for the phases after this one.
        for start in stride(from: 0, to: written.count, by: 1000) {
            let batch = Array(written[start..<min(written.count, start + 1000)])
            try await store.write { txn in for id in batch { try txn.delete(id) } }
        }
        emit("get-cached-writing", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies, extra: [
            ("hit_rate", format(Double(after.hits - before.hits) / Double(count), 4)),
            ("invalidations", "\(after.invalidations - before.invalidations)"), ("concurrent_inserts", "\(written.count)"),
        ])
    }

    /// pending-oldest: pages of the 100 oldest pending jobs, every field of each read from the
    /// page through ``JobRecordView`` (as the C program copies each record into a struct); then
    /// the same queries as owned ``Job`` pages (`jobs(in:limit:)`), a `pending-oldest-jobs` line.
    func pendingOldest() throws {
        try pendingOldestViews()
        try pendingOldestJobs()
    }

    @inline(never)
    func pendingOldestViews() throws {
        let count = scaled(10_000)
        let expected = count * min(100, try store.count(.pending))
        let pending = JobFilter(state: .pending)
        // Where each row's fields are copied, as the C program copies a record into its struct.
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: JobLimits.maxPayloadBytes, alignment: 8)
        let text = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 256, alignment: 8)
        defer {
            payload.deallocate()
            text.deallocate()
        }
        var latencies: [Double] = []
        var rows = 0, sum = 0
        for _ in 0..<count {
            latencies.append(try timed {
                var page = 0
                try store.forEachJob(matching: pending) { job in
                    job.withUTF8(.name) { UnsafeMutableRawBufferPointer(rebasing: text[0...]).copyMemory(from: $0) }
                    job.withUTF8(.queue) { UnsafeMutableRawBufferPointer(rebasing: text[256...]).copyMemory(from: $0) }
                    job.withUTF8(.tenant) { UnsafeMutableRawBufferPointer(rebasing: text[512...]).copyMemory(from: $0) }
                    job.withPayload { payload.copyMemory(from: $0) }
                    sum &+= Int(job.priority) &+ Int(job.attempts) &+ Int(job.maxAttempts) &+ Int(job.runAt.microseconds)
                        &+ Int(job.updatedAt.microseconds) &+ (job.lease == nil ? 0 : 1) &+ job.payloadCount
                    page += 1
                    return page < 100
                }
                rows += page
            } * 1e6)
        }
        guard rows == expected, sum != 0 else {
            throw BenchCheckFailure(description: "pending-oldest returned \(rows) rows for \(count) queries")
        }
        emit("pending-oldest", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    @inline(never)
    func pendingOldestJobs() throws {
        let count = scaled(10_000)
        let expected = count * min(100, try store.count(.pending))
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        var rows = 0
        for _ in 0..<count {
            var page: JobPage?
            latencies.append(try timed { page = try store.jobs(in: .pending, limit: 100) } * 1e6)
            rows += page?.jobs.count ?? 0
        }
        guard rows == expected else {
            throw BenchCheckFailure(description: "pending-oldest-jobs returned \(rows) rows for \(count) queries")
        }
        emit("pending-oldest-jobs", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    @inline(never)
    func countByState() throws {
        let count = scaled(10_000)
        var sum = 0
        let elapsed = try timed {
            for _ in 0..<count { sum += try store.counts().values.reduce(0, +) }
        }
        guard sum == count * total else { throw BenchCheckFailure(description: "count-by-state summed \(sum), expected \(count * total)") }
        emit("count-by-state", ops: count, seconds: elapsed)
    }

    @inline(never)
    func timeRange() throws {
        let queries = scaled(1000)
        let window = n / 100
        var stream = JobBenchWorkload.Stream(seed: 1002)
        var rows = 0
        let elapsed = try timed {
            for _ in 0..<queries {
                let first = stream.next(below: n - window + 1)
                let ids = try store.jobIDs(
                    createdFrom: JobBenchWorkload.createdAt(first), until: JobBenchWorkload.createdAt(first + window))
                rows += ids.count
            }
        }
        emit("time-range", ops: rows, seconds: elapsed, extra: [("queries", "\(queries)"), ("rows_per_query", format(Double(rows) / Double(queries), 1))])
    }

    @inline(never)
    func scanFilter() throws {
        let queries = 10
        var found = 0
        let elapsed = try timed {
            for _ in 0..<queries {
                try store.forEachJobHeader { _, header in
                    if header.state == .pending { found += 1 }
                    return true
                }
            }
        }
        guard found == queries * (try store.count(.pending)) else {
            throw BenchCheckFailure(description: "scan-filter found \(found / queries) pending jobs, the counter says \(try store.count(.pending))")
        }
        emit("scan-filter", ops: queries, seconds: elapsed)
    }

    /// Draws job numbers from `stream` until one is in `state` (reads not timed).
    @inline(never)  // scripts/instructions.sh leaves it out of the transition phases' counts
    func randomJob(in state: JobState, _ stream: inout JobBenchWorkload.Stream, excluding: Set<JobID> = []) throws -> JobID {
        guard try store.count(state) > excluding.count else {
            throw BenchCheckFailure(description: "no \(state) job is left to pick; run the phases before this one too (e.g. transition before transition-batch)")
        }
        while true {
            let id = JobBenchWorkload.id(stream.next(below: total))
            if !excluding.contains(id), try store.uncachedJob(id)?.state == state { return id }
        }
    }

    @inline(never)
    func transition() throws {
        let count = scaled(20_000)
        var stream = JobBenchWorkload.Stream(seed: 1003)
        var latencies: [Double] = []
        for _ in 0..<count {
            let id = try randomJob(in: .pending, &stream)
            latencies.append(try timed { try store.transition(id, to: .running) } * 1e6)
        }
        emit("transition", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    @inline(never)
    func transitionBatch() throws {
        let count = scaled(50_000)
        var stream = JobBenchWorkload.Stream(seed: 1004)
        var elapsed = 0.0
        var done = 0
        while done < count {
            var batch: [JobID] = []
            var chosen: Set<JobID> = []
            while batch.count < min(100, count - done) {
                let id = try randomJob(in: .running, &stream, excluding: chosen)
                chosen.insert(id)
                batch.append(id)
            }
            elapsed += try timed { try store.write { txn in for id in batch { try txn.transition(id, to: .succeeded) } } }
            done += batch.count
        }
        emit("transition-batch", ops: count, seconds: elapsed)
    }

    @inline(never)
    mutating func claim() throws {
        let count = scaled(20_000)
        var latencies: [Double] = []
        var claimed: [JobID] = []
        for _ in 0..<count {
            let owner = OwnerToken.random()
            latencies.append(try timed {
                guard let job = try store.claim(limit: 1, lease: .seconds(300), owner: owner).first else {
                    throw BenchCheckFailure(description: "claim found no ready job")
                }
                try store.complete(job.id, owner: owner)
                claimed.append(job.id)
            } * 1e6)
        }
        try checkClaimed(claimed, phase: "claim")
        emit("claim", ops: count, seconds: latencies.reduce(0, +) / 1e6, latencies: latencies)
    }

    @inline(never)
    mutating func claimBatch() throws {
        let count = scaled(40_000)
        var claimed: [JobID] = []
        let elapsed = try timed {
            while claimed.count < count {
                let owner = OwnerToken.random()
                let jobs = try store.claim(limit: min(100, count - claimed.count), lease: .seconds(300), owner: owner)
                guard !jobs.isEmpty else { throw BenchCheckFailure(description: "claim-batch ran out of ready jobs") }
                try store.write { txn in for job in jobs { try txn.complete(job.id, owner: owner) } }
                claimed += jobs.map(\.id)
            }
        }
        try checkClaimed(claimed, phase: "claim-batch")
        emit("claim-batch", ops: count, seconds: elapsed)
    }

    mutating func claimConcurrent() async throws {
        let count = scaled(20_000)
        let store = store
        let (claimed, wall) = try await claimConcurrently(count: count) { owner in
            guard let job = try await store.claim(limit: 1, lease: .seconds(300), owner: owner).first else {
                throw BenchCheckFailure(description: "claim-concurrent found no ready job")
            }
            try await store.complete(job.id, owner: owner)
            return job.id
        }
        try checkClaimed(claimed, phase: "claim-concurrent")
        emit("claim-concurrent", ops: count, seconds: wall)
    }

    /// Every claimed job was claimed exactly once (in this phase and before) and is succeeded.
    @inline(never)  // scripts/instructions.sh leaves it out of the claim phases' counts
    mutating func checkClaimed(_ ids: [JobID], phase: String) throws {
        let unique = Set(ids)
        guard unique.count == ids.count, unique.isDisjoint(with: claimedIDs) else {
            throw BenchCheckFailure(description: "\(phase): a job was claimed twice")
        }
        for id in ids where try store.uncachedJob(id)?.state != .succeeded {
            throw BenchCheckFailure(description: "\(phase): claimed job \(id) is not succeeded")
        }
        claimedIDs.formUnion(unique)
    }

    /// Per-state counters equal a recount by full scan; every index entry matches its record.
    func finalChecks() throws {
        var recount: [JobState: Int] = [:]
        try store.forEachJobHeader { _, header in
            recount[header.state, default: 0] += 1
            return true
        }
        let counters = try store.counts().filter { $0.value > 0 }
        guard counters == recount else {
            throw BenchCheckFailure(description: "counters \(counters) differ from a recount \(recount)")
        }
        let problems = try store.verify()
        guard problems.isEmpty else {
            throw BenchCheckFailure(description: "verify found \(problems.count) problems, first: \(problems[0])")
        }
    }

    func emitSize() {
        // Bytes allocated on disk (a write-mapped file is sparse up to the map size).
        var status = stat()
        let bytes = stat(dir + "/data.mdb", &status) == 0 ? Int(status.st_blocks) * 512 : 0
        emitSize(bytes: bytes, total: total)
    }
}

/// A flag the bench's writer tasks poll to stop.
final class StopSignal: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
