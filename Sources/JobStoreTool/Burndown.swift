import ArgumentParser
import Foundation
import JobScheduler
import JobStore
#if Postgres
import JobStorePostgres
#endif
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The burn-down's typed job (`--typed`): a few fields of JSON, as a small real job has.
struct BenchJob: JobDefinition {
    static let name = "bench-typed"
    static let options = JobOptions(queue: "bench", maxAttempts: 1)
    var sequence: Int
    var label: String
}

/// `jobstore bench --burndown`: the scheduler's throughput and latency, like River's `river bench`.
struct Burndown {
    let jobs: Int
    let durability: Bench.BenchDurability
    let dir: String
    let concurrencies: [Int]
    let prefetch: Int?
    let producerRate: Int?
    let seconds: Int
    let idleSeconds: Int?

    /// With a URL: burn down on the PostgreSQL backend there instead (`--backend postgres`).
    let postgresURL: String?
    /// On PostgreSQL: record no event history (``JobStorePostgres/PostgresStoreOptions/recordsHistory`` off).
    let noHistory: Bool
    /// Typed jobs (``BenchJob``: JSON parameters encoded at enqueue, decoded for the handler)
    /// instead of untyped ones carrying the same bytes: what the coding costs.
    let typed: Bool

    func run() async throws {
        if let idle = idleSeconds {
            try await measureIdle(seconds: idle)
            return
        }
        for concurrency in concurrencies {
            if let postgresURL {
                try await burnDownOnPostgres(url: postgresURL, concurrency: concurrency)
            } else if let producerRate {
                let path = "\(dir)/burndown-\(durability.rawValue)-\(concurrency)"
                try await produceAndWork(path: path, concurrency: concurrency, rate: producerRate)
            } else {
                let store = try open("\(dir)/burndown-\(durability.rawValue)-\(concurrency)")
                defer { store.close() }
                let commitsBefore = store.writerStatistics.commits
                try await burnDown(store, concurrency: concurrency, backend: "lmdb") { store.writerStatistics.commits - commitsBefore }
            }
        }
    }

    func open(_ path: String) throws -> JobRepository {
        var options = JobStoreOptions(durability: durability.lmdb, mapSize: 1 << 32)
        options.cache.enabled = false  // every job is read once, by its claim
        return try JobRepository(path: path, options: options)
    }

    func scheduler<B: SchedulerBackend>(_ store: B, concurrency: Int, _ handler: @escaping JobHandler) -> Scheduler<B> {
        var scheduler = Scheduler(backend: store, options: SchedulerOptions(maxConcurrency: concurrency, prefetch: prefetch))
        scheduler.handle(queue: "bench", handler)
        if typed {
            scheduler.register(BenchJob.self) { job, context in
                if job.sequence < 0 { try await handler(context) }  // never: the parameters are read, nothing done
            }
        }
        return scheduler
    }

    /// The burn-down on PostgreSQL: `synchronous_commit` on for full durability, off for relaxed.
    /// The database must hold no jobs (the burn-down counts every succeeded job as its own); the
    /// run's jobs are deleted after it, so the next concurrency starts empty again.
    func burnDownOnPostgres(url: String, concurrency: Int) async throws {
        #if Postgres
        var options = PostgresStoreOptions()
        options.synchronousCommit = durability == .full
        options.recordsHistory = !noHistory
        let store = try await PostgresJobStore(url: url, options: options)
        do {
            let existing = try await store.counts().values.reduce(0, +)
            guard existing == 0 else {
                throw ValidationError("the database at \(store.location) holds \(existing) jobs; give an empty database (the burn-down deletes its jobs after each run)")
            }
            try await burnDown(store, concurrency: concurrency, backend: "postgres") { nil }
            _ = try await store.pruneFinished(.succeeded, before: Timestamp.now.adding(.seconds(3600)))
            await store.close()
        } catch {
            await store.close()
            throw error
        }
        #else
        throw ValidationError("this jobstore was built without the PostgreSQL backend: build it with `swift build --traits Postgres` (or `--traits Dashboard,Postgres`)")
        #endif
    }

    /// Inserts `jobs` no-op jobs, then runs them all, printing progress every 2 s and a summary.
    /// `commits` says how many commits the run took, where the store counts them.
    func burnDown<B: JobStoreBackend>(_ store: B, concurrency: Int, backend: String, commits: () -> Int?) async throws {
        var inserted = 0
        let insertStart = ContinuousClock.now
        while inserted < jobs {
            let count = min(10_000, jobs - inserted)
            if typed {
                _ = try await store.enqueue((inserted..<inserted + count).map { BenchJob(sequence: $0, label: "bench") })
            } else {
                // The bytes a typed job would carry, so both store the same: only the coding differs.
                let payload = try BenchJob.coder.encode(BenchJob(sequence: 0, label: "bench"))
                _ = try await store.enqueue((0..<count).map { _ in NewJob(name: "noop", queue: "bench", payload: payload, maxAttempts: 1) })
            }
            inserted += count
        }
        let insertSeconds = (ContinuousClock.now - insertStart).seconds
        let service = Task { try await scheduler(store, concurrency: concurrency) { _ in }.run() }
        var last = (done: 0, at: ContinuousClock.now)
        let startWall = Timestamp.now
        while true {
            try await Task.sleep(for: .seconds(2))
            let done = try await store.count(.succeeded)
            let now = ContinuousClock.now
            let rate = Double(done - last.done) / (now - last.at).seconds
            FileHandle.standardError.write(Data("burndown \(backend) \(durability.rawValue) c=\(concurrency): \(done.grouped) of \(jobs.grouped), \(Int(rate).grouped) jobs/s\n".utf8))
            last = (done, now)
            if done >= jobs { break }
        }
        // The exact end: the last job's finish time, from the records.
        service.cancel()
        try await service.value
        var latencies: [Double] = []
        latencies.reserveCapacity(jobs)
        var lastFinish = startWall.microseconds
        var cursor: PageCursor?
        repeat {
            let page = try await store.jobs(in: .succeeded, order: .oldestFirst, limit: 10_000, after: cursor)
            for job in page.jobs {
                latencies.append(Double(job.updatedAt.microseconds - job.createdAt.microseconds) / 1000)
                lastFinish = max(lastFinish, job.updatedAt.microseconds)
            }
            cursor = page.next
        } while cursor != nil
        let elapsed = Double(lastFinish - startWall.microseconds) / 1e6
        summary("burndown", concurrency: concurrency, seconds: elapsed, commits: commits(), latencies: &latencies, label: "enqueue_to_finish_ms", extra: [
            ("backend", "\"\(backend)\""), ("insert_jobs_per_s", "\(Int(Double(jobs) / insertSeconds))"), ("typed", "\(typed)"),
        ])
    }

    /// A producer inserts one job at a time at `rate` jobs/s for `seconds` while the scheduler
    /// works; reports the latency from enqueue to the handler's start.
    func produceAndWork(path: String, concurrency: Int, rate: Int) async throws {
        let store = try open(path)
        defer { store.close() }
        let latencies = Mutex<[Double]>([])
        let total = rate * seconds
        let commitsBefore = store.writerStatistics.commits
        let service = Task {
            try await scheduler(store, concurrency: concurrency) { context in
                let waited = Double(Timestamp.now.microseconds - context.job.createdAt.microseconds) / 1000
                latencies.withLock { $0.append(waited) }
            }.run()
        }
        let start = ContinuousClock.now
        for n in 0..<total {
            try await Task.sleep(until: start + .microseconds(Int64(n) * 1_000_000 / Int64(rate)), clock: .continuous)
            try await store.insert(NewJob(name: "noop", queue: "bench", maxAttempts: 1))
        }
        while try store.count(.succeeded) < total { try await Task.sleep(for: .milliseconds(50)) }
        let elapsed = (ContinuousClock.now - start).seconds
        service.cancel()
        try await service.value
        var measured = latencies.withLock { $0 }
        summary("produce-and-work", concurrency: concurrency, seconds: elapsed, commits: store.writerStatistics.commits - commitsBefore,
                latencies: &measured, label: "enqueue_to_start_ms", extra: [("producer_rate", "\(rate)")], count: total)
    }

    /// Runs a scheduler with nothing to do for `seconds` and reports the CPU time the process
    /// used meanwhile (user + system, from getrusage): an idle scheduler should use none.
    func measureIdle(seconds: Int) async throws {
        let store = try open("\(dir)/idle")
        defer { store.close() }
        let service = Task { try await scheduler(store, concurrency: 8) { _ in }.run() }
        try await Task.sleep(for: .seconds(1))  // started: first claim and rescue done
        func cpu() -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        let before = cpu()
        try await Task.sleep(for: .seconds(seconds))
        let used = cpu() - before
        service.cancel()
        try await service.value
        print(#"{"store":"jobstore","mode":"idle","durability":"\#(durability.rawValue)","seconds":\#(seconds),"cpu_seconds":\#(String(format: "%.4f", used)),"cpu_percent":\#(String(format: "%.4f", used / Double(seconds) * 100))}"#)
    }

    func summary(
        _ mode: String, concurrency: Int, seconds: Double, commits: Int?, latencies: inout [Double], label: String,
        extra: [(String, String)], count: Int? = nil
    ) {
        latencies.sort()
        func percentile(_ p: Double) -> String {
            String(format: "%.2f", latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))])
        }
        let jobs = count ?? self.jobs
        var fields: [(String, String)] = [
            ("store", "\"jobstore\""), ("mode", "\"\(mode)\""), ("jobs", "\(jobs)"), ("durability", "\"\(durability.rawValue)\""),
            ("concurrency", "\(concurrency)"), ("prefetch", "\(SchedulerOptions(maxConcurrency: concurrency, prefetch: prefetch).prefetch)"), ("seconds", String(format: "%.3f", seconds)),
            ("jobs_per_s", "\(Int(Double(jobs) / max(seconds, 1e-9)))"), ("commits", commits.map { "\($0)" } ?? "null"),
            ("jobs_per_commit", commits.map { String(format: "%.1f", Double(jobs) / Double(max(1, $0))) } ?? "null"),
            ("\(label)_p50", percentile(0.5)), ("\(label)_p95", percentile(0.95)), ("\(label)_p99", percentile(0.99)),
        ]
        fields += extra
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }
}
