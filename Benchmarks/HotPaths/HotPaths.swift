// The store's hot paths, one benchmark each, on a store of 100,000 jobs shaped like JobBench's
// (10 % pending, 5 % running, 80 % succeeded, 5 % failed; 256-byte payloads), relaxed
// durability so that the disk does not hide the CPU cost:
//
//   swift package --package-path Benchmarks benchmark                      # every benchmark
//   swift package --package-path Benchmarks benchmark --filter 'get.*'     # some
//
// Figures: wall time and throughput per operation, and mallocs per operation (the targets:
// none on a cached read, none per row of an index iteration). docs/BENCHMARKS.md has them.
import Benchmark
import Foundation
@_spi(Benchmarks) import JobStore

/// The fixture's directory, removed when the benchmark process exits.
nonisolated(unsafe) var fixtureDirectory: String?

/// The shared store, filled once.
final class Fixture: @unchecked Sendable {
    /// Built on first use; a failure (a full disk, say) fails every benchmark with its error.
    static let shared = Result { try Fixture() }
    let directory: String
    let store: JobRepository
    let ids: [JobID]
    let jobs = 100_000
    var next = 0

    init() throws {
        directory = NSTemporaryDirectory() + "jobstore-hotpaths-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        fixtureDirectory = directory
        atexit { if let directory = fixtureDirectory { try? FileManager.default.removeItem(atPath: directory) } }
        var options = JobStoreOptions(durability: .noSync, mapSize: 1 << 32)
        options.cache = CacheOptions(enabled: true, maxEntries: 200_000, maxBytes: 1 << 30)
        store = try JobRepository(path: directory, options: options)
        var ids: [JobID] = []
        var random = SystemRandomNumberGenerator()
        for start in stride(from: 0, to: jobs, by: 1000) {
            let batch = (start..<start + 1000).map { n in
                NewJob(name: "job-\(n)", queue: "q\(n % 8)", payload: (0..<256).map { _ in UInt8.random(in: 0...255, using: &random) },
                       priority: UInt8(n % 10), tenant: "t\(n % 16)")
            }
            ids += try store.write { try $0.insert(batch) }.map(\.id)
        }
        // 90 % claimed; of those, 5 % of all stay running, 5 % fail, the rest succeed.
        let owner = OwnerToken.random()
        for start in stride(from: 0, to: jobs * 9 / 10, by: 1000) {
            try store.write { txn in
                for (offset, job) in try txn.claim(limit: 1000, lease: .seconds(86_400), owner: owner).enumerated() {
                    let n = start + offset
                    if n % 18 == 0 { continue }
                    if n % 18 == 1 { try txn.fail(job.id, owner: owner, error: "failed", retryAt: nil) } else { try txn.complete(job.id, owner: owner) }
                }
            }
        }
        self.ids = ids
    }

    /// A random job's id.
    func randomID() -> JobID { ids[Int.random(in: 0..<ids.count)] }

    /// A new pending job (to keep the claims fed).
    func newJob() -> NewJob {
        next += 1
        return NewJob(name: "fresh-\(next)", queue: "q\(next % 8)", payload: Array(repeating: 7, count: 256), priority: UInt8(next % 10))
    }
}

let benchmarks: @Sendable () -> Void = {
    // Thresholds (checked in under Benchmarks/Thresholds/, `thresholds check`): malloc counts
    // only, which do not depend on the machine's load; times on these shared machines vary 2 ×.
    // Names have no spaces: benchmark 1.38.1 writes a threshold file with spaces made
    // underscores but looks for it by the name as it is.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 200_000,
        thresholds: [.mallocCountTotal: .init(relative: [.p90: 5.0], absolute: [.p90: 3])])

    Benchmark("record-encode") { benchmark in
        let fixture = try Fixture.shared.get()
        let job = try fixture.store.uncachedJob(fixture.ids[0])!
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(BenchmarkHooks.encode(job)) }
    }

    Benchmark("record-decode") { benchmark in
        let fixture = try Fixture.shared.get()
        let job = try fixture.store.uncachedJob(fixture.ids[0])!
        let bytes = BenchmarkHooks.encode(job)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try bytes.withUnsafeBytes { blackHole(try BenchmarkHooks.decode($0, id: job.id)) }
        }
    }

    Benchmark("get-uncached") { benchmark in
        let fixture = try Fixture.shared.get()
        let id = fixture.randomID()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try fixture.store.uncachedJob(id)) }
    }

    Benchmark("get-cached") { benchmark in
        let fixture = try Fixture.shared.get()
        let id = fixture.randomID()
        _ = try fixture.store.job(id)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try fixture.store.job(id)) }
    }

    Benchmark("pending-oldest-page-of-100") { benchmark in
        let store = try Fixture.shared.get().store
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try store.jobs(in: .pending, limit: 100)) }
    }

    // The same page read in place: every field of each row read from the page (JobRecordView),
    // nothing allocated per row.
    Benchmark("pending-oldest-view-page-of-100") { benchmark in
        let store = try Fixture.shared.get().store
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var rows = 0, sum = 0
            try store.forEachJob(matching: JobFilter(state: .pending)) { job in
                sum &+= Int(job.priority) &+ Int(job.attempts) &+ Int(job.runAt.microseconds) &+ job.payloadCount
                sum &+= job.withUTF8(.name) { $0.count } ?? 0
                sum &+= job.withUTF8(.queue) { $0.count } ?? 0
                rows += 1
                return rows < 100
            }
            blackHole(sum)
        }
    }

    Benchmark("count-by-state") { benchmark in
        let store = try Fixture.shared.get().store
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try store.counts()) }
    }

    Benchmark("time-range-1000-ids") { benchmark in
        let fixture = try Fixture.shared.get()
        let first = try fixture.store.uncachedJob(fixture.ids[50_000])!.createdAt
        let last = try fixture.store.uncachedJob(fixture.ids[51_000])!.createdAt
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try fixture.store.jobIDs(createdFrom: first, until: last)) }
    }

    // The writes consume the fixture's 10,000 pending jobs (or add their own before the
    // measurement starts): the iteration limits keep each run within them.
    for (name, limit) in [("claim-1-and-complete-in-one-transaction", 1), ("claim-100-and-complete-in-one-transaction", 100)] {
        Benchmark(name, configuration: .init(maxIterations: 9_000 / limit)) { benchmark in
            let fixture = try Fixture.shared.get()
            let owner = OwnerToken.random()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try fixture.store.write { txn in
                    for job in try txn.claim(limit: limit, lease: .seconds(60), owner: owner) { try txn.complete(job.id, owner: owner) }
                }
            }
        }
    }

    // Eight callers at once, each inserting one job with its own async call: the writer thread
    // commits them together (one cohort, one transaction) — the hand-over's cost per caller.
    // Its malloc count moves a little with how the callers fall into cohorts (360–364 at p90).
    let cohortTolerance: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(relative: [.p90: 10.0], absolute: [.p90: 40])]
    Benchmark("group-commit-8-callers-insert-1-each", configuration: .init(maxIterations: 2_000, thresholds: cohortTolerance)) { benchmark in
        let fixture = try Fixture.shared.get()
        let store = fixture.store
        let rounds = (0..<benchmark.scaledIterations.count).map { _ in (0..<8).map { _ in fixture.newJob() } }
        benchmark.startMeasurement()
        for round in rounds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in round { group.addTask { _ = try await store.insert(job) } }
                try await group.waitForAll()
            }
        }
    }

    Benchmark("insert-batch-of-1000", configuration: .init(maxIterations: 100)) { benchmark in
        let fixture = try Fixture.shared.get()
        let batches = (0..<benchmark.scaledIterations.count).map { _ in (0..<1000).map { _ in fixture.newJob() } }
        benchmark.startMeasurement()
        for batch in batches { try fixture.store.insert(batch) }
    }
}
