import Foundation
import Locking
import JobScheduler
import JobStore
import Synchronization
import Testing
import TestSupport

/// Opens a store in a new temporary directory.
func withStore<R>(_ name: String = #function, _ body: (JobRepository, TemporaryDirectory) async throws -> R) async throws -> R {
    try await withTemporaryDirectory(name) { directory in
        let store = try JobRepository(path: directory.path, options: JobStoreOptions(durability: .noSync))
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
