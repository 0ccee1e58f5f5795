import Foundation
import Locking
import JobScheduler
import JobStore
import Synchronization
import Testing
import TestSupport

/// What handlers did, and a way to wait for it without sleeping: `wait(until:)` returns when a
/// recorded event makes the condition true (or fails after 60 s, a hang detector — not a timing).
final class Recorder: Sendable {
    struct Entry: Sendable {
        var event: String
        var job: Job
        var at: Timestamp
    }
    private let state = Lock<(entries: [Entry], waiters: [(id: Int, condition: @Sendable ([Entry]) -> Bool, continuation: CheckedContinuation<Void, Never>)])>(([], []))
    private let nextWaiter = Atomic<Int>(0)

    func record(_ event: String, _ job: Job) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.append(Entry(event: event, job: job, at: .now))
            let entries = state.entries
            let (done, waiting) = (state.waiters.filter { $0.condition(entries) }, state.waiters.filter { !$0.condition(entries) })
            state.waiters = waiting
            return done.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    var entries: [Entry] { state.withLock { $0.entries } }

    func events(_ event: String) -> [Entry] { entries.filter { $0.event == event } }

    /// Waits until `condition` holds for the recorded entries.
    func wait(until condition: @escaping @Sendable ([Entry]) -> Bool, _ what: String = "the expected events") async throws {
        let id = nextWaiter.wrappingAdd(1, ordering: .relaxed).oldValue
        let timeout = Task { [self] in
            try await Task.sleep(for: .seconds(60))
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if condition(state.entries) { return true }
                state.waiters.append((id, condition, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
        timeout.cancel()
        if !condition(entries) { throw TestFailure("waited 60 s for \(what) (a hang)") }
    }

    /// Waits until `count` entries of `event` were recorded.
    func wait(for count: Int, _ event: String) async throws {
        try await wait(until: { $0.lazy.filter { $0.event == event }.count >= count }, "\(count) '\(event)' events")
    }
}

/// Opens a store in a new temporary directory.
func withStore<R>(_ name: String = #function, _ body: (JobRepository, TemporaryDirectory) async throws -> R) async throws -> R {
    try await withTemporaryDirectory(name) { directory in
        let store = try JobRepository(path: directory.path, options: JobStoreOptions(durability: .noSync))
        defer { store.close() }
        return try await body(store, directory)
    }
}

/// Runs `scheduler` while `body` runs, then cancels it and waits until it stopped.
func running<R>(_ scheduler: Scheduler<JobRepository>, _ body: () async throws -> R) async throws -> R {
    let task = Task { try await scheduler.run() }
    let result: R
    do {
        result = try await body()
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
    task.cancel()
    try await task.value
    return result
}

/// Fails the test if `verify()` finds anything.
func expectConsistent(_ store: JobRepository, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let problems = try store.verify()
    #expect(problems.isEmpty, "verify found: \(problems.prefix(5))", sourceLocation: sourceLocation)
}

/// Options for tests: quick retries, short intervals.
func testOptions(concurrency: Int = 8) -> SchedulerOptions {
    SchedulerOptions(
        maxConcurrency: concurrency, lease: .seconds(30), retry: RetryPolicy(base: .milliseconds(20), jitter: 0),
        rescueInterval: .seconds(30), shutdownTimeout: .seconds(5))
}

/// Waits until `condition` holds for the store, re-checking it after each committed change
/// (the change feed: no polling); fails after 60 s (a hang detector).
func waitUntil(_ store: JobRepository, _ what: String, _ condition: @escaping @Sendable () throws -> Bool) async throws {
    let feed = store.changes()
    if try condition() { return }
    let found = Task {
        for await _ in feed where (try? condition()) == true { return true }
        return false
    }
    let timeout = Task {
        try await Task.sleep(for: .seconds(60))
        found.cancel()
    }
    defer { timeout.cancel() }
    if try condition() {
        found.cancel()
        return
    }
    guard await found.value else { throw TestFailure("waited 60 s for \(what) (a hang)") }
}

/// Waits for a job to reach `state`.
func waitForState(_ store: JobRepository, _ id: JobID, _ state: JobState) async throws {
    try await waitUntil(store, "job \(id) to be \(state)") { try store.uncachedJob(id)?.state == state }
}
