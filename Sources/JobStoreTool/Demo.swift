import ArgumentParser
import Foundation
import JobScheduler
import JobStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `jobstore demo`: embeds a store, runs the scheduler on a pipeline and 10,000 jobs, then shows
/// the admin tool on the result.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the demonstration: a store, the scheduler running a release pipeline and 10,000 jobs, then the admin tool on the result.")

    @Option(parsing: .unconditional, help: "Directory for the demo store (default: a new temporary directory, kept and named at the end).")
    var dir: String?
    @Option(parsing: .unconditional, help: "How many standalone jobs to enqueue.")
    var jobs = 10_000
    @Option(parsing: .unconditional, help: "Handlers running at once.")
    var concurrency = 16

    func validate() throws {
        guard Validation.enabled else { return }
        if jobs < 10 { throw ValidationError("--jobs must be at least 10") }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if let dir { try requireFreshStoreDirectory(dir) }
    }

    func run() async throws {
        let path = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-demo-\(UUID().uuidString.prefix(8))").path
        print("== JobStore demo: a store at \(path) (\(JobRepository.storageLibraryVersion))\n")
        let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))

        print("1. Enqueue a release pipeline (8 steps: build, 4 test suites in parallel, then package,")
        print("   sign and publish), a nightly import whose 'transform' step will fail for good, and")
        print("   \(jobs.grouped) standalone jobs: mixed priorities, 10 % delayed by up to 2 s, 5 % failing once.")
        let release = try await store.enqueue(PipelineDefinition(name: "release", version: 3, steps: [
            PipelineStep("build", job: NewJob(name: "build", queue: "ci")),
            PipelineStep("test-unit", job: NewJob(name: "test", queue: "ci", payload: Array("unit".utf8)), dependsOn: ["build"]),
            PipelineStep("test-integration", job: NewJob(name: "test", queue: "ci", payload: Array("integration".utf8), maxAttempts: 3), dependsOn: ["build"]),
            PipelineStep("test-linux", job: NewJob(name: "test", queue: "ci", payload: Array("linux".utf8)), dependsOn: ["build"]),
            PipelineStep("test-macos", job: NewJob(name: "test", queue: "ci", payload: Array("macos".utf8)), dependsOn: ["build"]),
            PipelineStep("package", job: NewJob(name: "package", queue: "ci"), dependsOn: ["test-unit", "test-integration", "test-linux", "test-macos"]),
            PipelineStep("sign", job: NewJob(name: "sign", queue: "ci"), dependsOn: ["package"]),
            PipelineStep("publish", job: NewJob(name: "publish", queue: "ci", priority: 9), dependsOn: ["sign"]),
        ]))
        let nightly = try await store.enqueue(PipelineDefinition(name: "nightly-import", steps: [
            PipelineStep("fetch", job: NewJob(name: "fetch", queue: "ci")),
            PipelineStep("transform", job: NewJob(name: "transform", queue: "ci", maxAttempts: 2), dependsOn: ["fetch"]),
            PipelineStep("thumbnails", job: NewJob(name: "thumbnails", queue: "ci"), dependsOn: ["fetch"]),
            PipelineStep("load", job: NewJob(name: "load", queue: "ci"), dependsOn: ["transform"]),
            PipelineStep("report", job: NewJob(name: "report", queue: "ci"), dependsOn: ["load", "thumbnails"]),
        ]))
        var generator = SystemRandomNumberGenerator()
        let now = Timestamp.now
        var batch: [NewJob] = []
        for n in 0..<jobs {
            let queue = ["mail", "media", "reports"][n % 3]
            let delayed = n % 10 == 7
            batch.append(NewJob(
                name: n % 20 == 3 ? "flaky" : "\(queue)-job", queue: queue, payload: Array("item \(n)".utf8),
                priority: UInt8.random(in: 0...9, using: &generator),
                runAt: delayed ? now.adding(.milliseconds(Int64.random(in: 100...2000, using: &generator))) : nil, maxAttempts: 3))
            if batch.count == 1000 {
                try await store.insert(batch)
                batch = []
            }
        }
        try await store.insert(batch)

        print("\n2. The scheduler runs them: \(concurrency) handlers at once, retries after 50 ms, 100 ms, …;")
        print("   each pipeline step starts when its dependencies succeeded (in the transaction that completed them).\n")
        var scheduler = Scheduler(
            backend: store,
            options: SchedulerOptions(
                maxConcurrency: concurrency, queueConcurrency: ["ci": 4], retry: RetryPolicy(base: .milliseconds(50), jitter: 0.2)))
        let work: JobHandler = { context in
            if context.job.name == "flaky" && context.attempt == 1 { throw DemoFailure("connection reset (first attempt)") }
        }
        for queue in ["mail", "media", "reports"] { scheduler.handle(queue: queue, work) }
        scheduler.handle(queue: "ci") { context in
            try await Task.sleep(for: .milliseconds(Int64.random(in: 40...120)))  // steps take a moment
            if context.job.name == "transform" { throw DemoFailure("schema mismatch in column 7") }
            if context.job.name == "test" && context.attempt == 1 && context.job.payload == Array("integration".utf8) {
                throw DemoFailure("flaky integration test")
            }
        }
        // Periodic jobs: registered in the store (see `jobstore schedules`); none is due during the demo.
        try scheduler.schedule(
            "nightly-import", cron: "0 3 * * *", timeZone: "Europe/Paris", missedTicks: .runOnce,
            job: NewJob(name: "fetch", queue: "ci"))
        try scheduler.schedule("weekly-report", cron: "@weekly", job: NewJob(name: "reports-job", queue: "reports"))
        let service = Task { try await scheduler.run() }
        let started = ContinuousClock.now
        try await showProgress(store, started: started)
        service.cancel()
        try await service.value
        let seconds = (ContinuousClock.now - started).seconds
        let total = try store.counts().values.reduce(0, +)
        let failedStep = try store.pipelineDetails(nightly.id)?.jobs.first { $0.state == .failed }
        print("   all \(total.grouped) jobs finished in \(String(format: "%.1f", seconds)) s (\(Int(Double(total) / seconds).grouped) jobs/s).")
        store.close()

        print("\n3. The admin tool on the result:\n")
        print("$ jobstore stats \(path)")
        try await runTool(["stats", path])
        print("\n$ jobstore pipelines list \(path)")
        try await runTool(["pipelines", "list", path])
        print("\n$ jobstore pipelines show \(path) \(release.id)")
        try await runTool(["pipelines", "show", path, release.id.description])
        print("\n$ jobstore pipelines show \(path) \(nightly.id)")
        try await runTool(["pipelines", "show", path, nightly.id.description])
        if let failedStep {
            print("\n$ jobstore jobs show \(path) \(failedStep.id)      (its timeline: each attempt, who ran it, why it failed)")
            try await runTool(["jobs", "show", path, failedStep.id.description])
        }
        print("\n$ jobstore verify \(path)")
        try await runTool(["verify", path])
        print("""

            The store stays at \(path). More:
              jobstore jobs list \(path) --state failed      the job that failed for good, and why: jobs show ID
              jobstore pipelines show \(path) \(nightly.id) --dot | dot -Tsvg > nightly.svg
              jobstore retry \(path) \(nightly.id)           re-run the failed step and what it cancelled
              jobstore jobs history \(path) --kind retried,failed   every job's events in commit order (--follow, --since)
              jobstore schedules \(path)                     the periodic jobs the scheduler registered
              jobstore queues \(path)                        each queue's jobs per state; pause and resume
            """)
        #if Dashboard
        print("  jobstore serve \(path)                         the web dashboard, live, at http://127.0.0.1:8080/")
        #endif
    }

    /// Prints the counts per state while the scheduler works (in place on a terminal, a line a
    /// second otherwise), until no job is waiting, pending or running.
    func showProgress(_ store: JobRepository, started: ContinuousClock.Instant) async throws {
        let terminal = Terminal.isTerminal
        var lastLine = ContinuousClock.now
        var lastFinished = 0
        var lastTime = started
        while true {
            try await Task.sleep(for: .milliseconds(250))
            let counts = try store.counts()
            let finished = (counts[.succeeded] ?? 0) + (counts[.failed] ?? 0) + (counts[.cancelled] ?? 0)
            let unfinished = (counts[.waiting] ?? 0) + (counts[.pending] ?? 0) + (counts[.running] ?? 0)
            let now = ContinuousClock.now
            let rate = Double(finished - lastFinished) / max(0.001, (now - lastTime).seconds)
            (lastFinished, lastTime) = (finished, now)
            let line = "   \(finished.grouped) finished, \(Int(rate).grouped) jobs/s · "
                + JobState.allCases.map { "\($0) \((counts[$0] ?? 0).grouped)" }.joined(separator: " · ")
            if terminal {
                FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line + (unfinished == 0 ? "\n" : "")).utf8))
            } else if unfinished == 0 || now - lastLine >= .seconds(1) {
                print(line)
                lastLine = now
            }
            if unfinished == 0 { return }
        }
    }
}

struct DemoFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs the tool's command that `arguments` name, as `jobstore` given them would.
func runTool(_ arguments: [String]) async throws {
    var command = try JobStoreCommand.parseAsRoot(arguments)
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
}
