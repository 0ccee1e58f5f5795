import Foundation
import JobScheduler
import Locking
import Logging
@testable import JobStore
@testable import JobStorePostgres
import PostgresNIO
import ServiceLifecycle
import Testing
import Tracing
import TestSupport

/// The backends every conformance test runs on.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case lmdb, postgres
    var testDescription: String { self == .lmdb ? "LMDB" : "PostgreSQL" }

    /// The backends this run can test: LMDB always, PostgreSQL when ``postgresURL`` is set (the
    /// test `postgresConfigured` says so when it is not).
    static var available: [Backend] { postgresURL == nil ? [.lmdb] : [.lmdb, .postgres] }
}

/// The PostgreSQL server the PostgreSQL cases use (`scripts/postgres.sh start` starts a private
/// one and prints the line that sets it); without it those cases are skipped, saying so.
let postgresURL = ProcessInfo.processInfo.environment["JOBSTORE_POSTGRES_URL"]

/// What a run without a server says.
let postgresSkipped = "PostgreSQL cases skipped: set JOBSTORE_POSTGRES_URL (`eval \"$(scripts/postgres.sh start)\"` starts a private server and sets it)"

/// Opens a fresh, empty store of `backend` for one test: LMDB in a new temporary directory;
/// PostgreSQL in a new database on the server of ``postgresURL``, dropped afterwards.
func withBackend<R>(_ backend: Backend, _ name: String = #function, _ body: (any JobStoreBackend) async throws -> R) async throws -> R {
    try await withBackend(backend, name) { store, _ in try await body(store) }
}

/// ``withBackend(_:_:_:)-(_,_,(any JobStoreBackend)->R)``, with what the admin tool takes for
/// the store: its directory, or its URL.
/// `traceInstrument`: what writes an enqueuing task's trace context into new jobs.
func withBackend<R>(
    _ backend: Backend, _ name: String = #function, traceInstrument: (any Instrument)? = nil,
    located body: (any AdministrableStore, String) async throws -> R
) async throws -> R {
    switch backend {
    case .lmdb:
        return try await withTemporaryDirectory(name) { directory in
            var options = JobStoreOptions(durability: .noSync)
            options.traceInstrument = traceInstrument
            let store = try JobRepository(path: directory.path, options: options)
            defer { store.close() }
            return try await body(store, directory.path)
        }
    case .postgres:
        guard let postgresURL else { throw TestFailure(postgresSkipped) }
        return try await withTestDatabase(postgresURL) { url in
            var options = PostgresStoreOptions.forTests
            options.traceInstrument = traceInstrument
            let store = try await PostgresJobStore(url: url, options: options)
            do {
                let result = try await body(store, url)
                await store.close()
                return result
            } catch {
                await store.close()
                throw error
            }
        }
    }
}

/// Runs `body` with the URL of a new database on the server `serverURL` names, dropping it after.
func withTestDatabase<R>(_ serverURL: String, _ body: (String) async throws -> R) async throws -> R {
    let name = "jobstore_test_\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    try await onServer(serverURL) { try await $0.query("CREATE DATABASE \(unescaped: name)") }
    guard var parts = URLComponents(string: serverURL) else { throw TestFailure("bad URL \(serverURL)") }
    parts.path = "/\(name)"
    let url = parts.string ?? serverURL
    do {
        let result = try await body(url)
        try await onServer(serverURL) { try await $0.query("DROP DATABASE \(unescaped: name) WITH (FORCE)") }
        return result
    } catch {
        try? await onServer(serverURL) { try await $0.query("DROP DATABASE \(unescaped: name) WITH (FORCE)") }
        throw error
    }
}

/// Runs `body` with a client of the server `url` names.
func onServer(_ url: String, _ body: (PostgresClient) async throws -> Void) async throws {
    let (configuration, _, _) = try PostgresJobStore.configuration(url: url, options: PostgresStoreOptions())
    let client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "test"))
    let running = Task { await client.run() }
    defer { running.cancel() }
    try await body(client)
}

/// Runs a scheduler on `store` with `handlers` (queue → handler) while `body` runs, then stops
/// it and waits until it stopped.
func withScheduler<R>(
    _ store: any JobStoreBackend, options: SchedulerOptions = testOptions(), _ handlers: [String: JobHandler],
    named: [(job: String, queue: String, handler: JobHandler)] = [], every: [(name: String, interval: Duration, job: NewJob)] = [],
    setup: [any SchedulerSetup] = [], logger: Logger? = nil, _ body: () async throws -> R
) async throws -> R {
    try await withScheduler(opened: store, options: options, handlers, named: named, every: every, setup: setup, logger: logger, body)
}

/// Something a test registers on a scheduler of any backend (a typed handler, say): a
/// generic method, as a closure cannot be generic over the backend.
protocol SchedulerSetup: Sendable {
    func apply<B: SchedulerBackend>(to scheduler: inout Scheduler<B>)
}

/// A typed handler, registered with ``Scheduler/register(_:queue:timeout:_:)``.
struct Typed<J: JobDefinition>: SchedulerSetup {
    var queue: String?
    var timeout: Duration?
    let handler: @Sendable (J, JobContext) async throws -> Void

    init(_ type: J.Type, queue: String? = nil, timeout: Duration? = nil, _ handler: @escaping @Sendable (J, JobContext) async throws -> Void) {
        self.queue = queue
        self.timeout = timeout
        self.handler = handler
    }

    func apply<B: SchedulerBackend>(to scheduler: inout Scheduler<B>) { scheduler.register(J.self, queue: queue, timeout: timeout, handler) }
}

/// A middleware, added with ``Scheduler/use(_:)``.
struct Use: SchedulerSetup {
    let middleware: any JobMiddleware
    init(_ middleware: any JobMiddleware) { self.middleware = middleware }
    func apply<B: SchedulerBackend>(to scheduler: inout Scheduler<B>) { scheduler.use(middleware) }
}

/// A log handler that keeps every message (with its level), for tests that expect a report.
struct CapturingLogHandler: LogHandler {
    let messages: Lock<[(Logger.Level, String)]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        messages.withLock { $0.append((level, message.description)) }
    }

    /// A logger whose messages land in `messages`.
    static func logger(_ messages: Lock<[(Logger.Level, String)]>) -> Logger {
        Logger(label: "test") { _ in CapturingLogHandler(messages: messages) }
    }
}

private func withScheduler<B: JobStoreBackend, R>(
    opened store: B, options: SchedulerOptions, _ handlers: [String: JobHandler], named: [(job: String, queue: String, handler: JobHandler)],
    every: [(name: String, interval: Duration, job: NewJob)], setup: [any SchedulerSetup], logger: Logger?, _ body: () async throws -> R
) async throws -> R {
    var scheduler = Scheduler(backend: store, options: options, logger: logger)
    for (queue, handler) in handlers { scheduler.handle(queue: queue, handler) }
    for (job, queue, handler) in named { scheduler.handle(job: job, queue: queue, handler) }
    for item in setup { item.apply(to: &scheduler) }
    for (name, interval, job) in every { try scheduler.schedule(name, every: interval, job: job) }
    return try await running(scheduler, body)
}

/// Runs a scheduler on `store` as a service, for `body` to shut it down gracefully.
func withService(_ store: any JobStoreBackend, options: SchedulerOptions, _ handlers: [String: JobHandler], _ body: (ServiceGroup) async throws -> Void) async throws {
    try await withService(opened: store, options: options, handlers, body)
}

private func withService<B: JobStoreBackend>(
    opened store: B, options: SchedulerOptions, _ handlers: [String: JobHandler], _ body: (ServiceGroup) async throws -> Void
) async throws {
    var scheduler = Scheduler(backend: store, options: options)
    for (queue, handler) in handlers { scheduler.handle(queue: queue, handler) }
    let group = ServiceGroup(services: [scheduler], logger: Logger(label: "test"))
    let service = Task { try await group.run() }
    do {
        try await body(group)
    } catch {
        await group.triggerGracefulShutdown()
        _ = await service.result
        throw error
    }
    try await service.value
}

/// Options for tests: quick retries, short intervals.
func testOptions(concurrency: Int = 8) -> SchedulerOptions {
    SchedulerOptions(
        maxConcurrency: concurrency, lease: .seconds(30), retry: RetryPolicy(base: .milliseconds(20), jitter: 0),
        rescueInterval: .seconds(30), shutdownTimeout: .seconds(5))
}

/// Waits until `condition` holds, checking every 10 ms; fails after `limit` (a hang detector, not
/// a timing: the backends have no common change feed to wait on). 180 s: under ThreadSanitizer,
/// with the whole suite running at once on a slow shared host, 2,000 jobs on PostgreSQL took
/// longer than the 60 s this was (CI, 2026-11-29).
func waitUntil(_ what: String, within limit: Duration = .seconds(180), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        if ContinuousClock.now > deadline { throw TestFailure("waited \(limit) for \(what) (a hang)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Waits until `count()` reaches `target`, failing only when it stops moving for `stall`: a
/// stall detector, not a timing — a big burn-down under ThreadSanitizer with the whole suite
/// running at once took more than 180 s on CI, moving all along (2026-12-07). The failure says
/// where the count stopped and, from `status`, what else was seen (e.g. the jobs per state).
func waitForCount(
    _ what: String, _ target: Int, stalledAfter stall: Duration = .seconds(120), status: () async throws -> String = { "" },
    _ count: () async throws -> Int
) async throws {
    var (last, movedAt) = (try await count(), ContinuousClock.now)
    while last < target {
        try await Task.sleep(for: .milliseconds(10))
        let now = try await count()
        if now != last {
            (last, movedAt) = (now, .now)
        } else if movedAt.duration(to: .now) > stall {
            let seen = try await status()
            throw TestFailure("waited for \(what): stuck at \(last) of \(target) for \(stall) (a hang)\(seen.isEmpty ? "" : "; \(seen)")")
        }
    }
}

/// Waits for a job to reach `state`.
func waitForState(_ store: any JobStoreBackend, _ id: JobID, _ state: JobState) async throws {
    try await waitUntil("job \(id) to be \(state)") { try await store.job(id)?.state == state }
}

/// Every job of the store, listed state by state a page at a time: the recount the O(1)
/// counters must equal.
func recount(_ store: any JobStoreBackend) async throws -> [JobState: [Job]] {
    var all: [JobState: [Job]] = [:]
    for state in JobState.allCases {
        var cursor: PageCursor?
        repeat {
            let page = try await store.jobs(in: state, order: .oldestFirst, limit: 37, after: cursor)
            all[state, default: []] += page.jobs
            cursor = page.next
        } while cursor != nil
    }
    return all
}

/// Fails the test unless every counter equals a recount of the listings, and `verify` finds
/// nothing (on LMDB every record, index entry, counter, pipeline and event; on PostgreSQL the
/// counters of jobs and pipelines and each pipeline's step counts).
func expectConsistent(_ store: any JobStoreBackend, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    if let inspectable = store as? any InspectableStore {
        let problems = try await inspectable.verify(chunkSize: 10_000)
        #expect(problems.isEmpty, "verify found: \(problems.prefix(5))", sourceLocation: sourceLocation)
    }
    let listed = try await recount(store)
    let counts = try await store.counts()
    for state in JobState.allCases {
        #expect(counts[state] == listed[state]?.count ?? 0, "\(state): counter \(counts[state] ?? -1), listed \(listed[state]?.count ?? 0)", sourceLocation: sourceLocation)
    }
}

extension PostgresStoreOptions {
    /// What the tests open stores with: a connect timeout long enough for a server and a test
    /// process both slowed by a sanitizer while the whole suite runs in parallel (the default
    /// 10 s was once exceeded opening a store under ThreadSanitizer in CI, and 60 s under
    /// AddressSanitizer while two helper processes burned down 20,000 jobs on the same server).
    /// A hang detector, not a timing.
    static var forTests: PostgresStoreOptions {
        var options = PostgresStoreOptions()
        options.connectTimeout = .seconds(300)
        return options
    }
}

/// Changes a pipeline step's stored record behind the store's back (a corrupt state the rules
/// must refuse): on LMDB through the transaction's own step writer, on PostgreSQL by SQL.
func setStep(_ store: any JobStoreBackend, _ pipeline: PipelineID, _ index: Int, _ change: @escaping @Sendable (inout PipelineStepRecord) -> Void) async throws {
    if let repository = store as? JobRepository {
        try await repository.write { txn in
            var step = try txn.step(pipeline, index)
            change(&step)
            try txn.putStep(pipeline, step)
        }
    } else if let store = store as? PostgresJobStore {
        var step = try #require(try await store.pipelineDetails(pipeline)).steps[index]
        change(&step)
        try await store.client.query(
            "UPDATE jobstore_pipeline_steps SET remaining = \(Int32(step.remainingDependencies)), job_id = \(UUID(step.jobID)) WHERE pipeline_id = \(UUID(pipeline)) AND step = \(Int32(index))")
    }
}
