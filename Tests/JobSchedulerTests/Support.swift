import Foundation
import Locking
import JobScheduler
import JobStore
import Synchronization
import Testing
import TestSupport

/// Opens a store in a new temporary directory.
func withStore<R>(
    _ name: String = #function, writeMap: Bool = false, _ body: (JobRepository, TemporaryDirectory) async throws -> R
) async throws -> R {
    try await withTemporaryDirectory(name) { directory in
        var options = JobStoreOptions(durability: .noSync)
        options.environment.writeMap = writeMap
        let store = try JobRepository(path: directory.path, options: options)
        defer { store.close() }
        return try await body(store, directory)
    }
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
/// (the change feed: no polling); fails after `limit` (a hang detector, not a timing). 180 s:
/// under ThreadSanitizer, with the whole suite running at once on a slow shared host, a
/// scheduler finishing 2,000 jobs after three killed processes took longer than the 60 s this
/// was (CI, 2026-11-29; alone under ThreadSanitizer the test takes 10 s).
func waitUntil(
    _ store: JobRepository, _ what: String, within limit: Duration = .seconds(180), _ condition: @escaping @Sendable () throws -> Bool
) async throws {
    let feed = store.changes()
    if try condition() { return }
    let found = Task {
        for await _ in feed where (try? condition()) == true { return true }
        return false
    }
    let timeout = Task {
        try await Task.sleep(for: limit)
        found.cancel()
    }
    defer { timeout.cancel() }
    if try condition() {
        found.cancel()
        return
    }
    guard await found.value else { throw TestFailure("waited \(limit) for \(what) (a hang)") }
}

/// Waits for a job to reach `state`.
func waitForState(_ store: JobRepository, _ id: JobID, _ state: JobState) async throws {
    try await waitUntil(store, "job \(id) to be \(state)") { try store.uncachedJob(id)?.state == state }
}
