import Foundation
import JobScheduler
import JobStore
@testable import JobStorePostgres
import Locking
import PostgresNIO
import Testing
import TestSupport

/// What only the PostgreSQL backend has: a server to reach, a schema to migrate, and several
/// stores (processes, machines) on one database.
@Suite("PostgreSQL backend", .serialized)
struct PostgresTests {
    @Test("a URL that is not one, or an unknown sslmode, is refused with what to give instead")
    func badURLs() async throws {
        for url in ["mysql://x@localhost/db", "postgres://", "not a url", "postgres://u@localhost/db?sslmode=sometimes"] {
            do {
                _ = try await PostgresJobStore(url: url)
                Issue.record("\(url) was accepted")
            } catch let error as JobStoreError {
                #expect(error.code == .invalidArgument && error.hint?.contains("postgres://") == true, "\(url): \(error)")
            }
        }
    }

    @Test("a server that does not answer is reported as such within the connect timeout")
    func unreachable() async throws {
        var options = PostgresStoreOptions()
        options.connectTimeout = .milliseconds(500)
        do {
            _ = try await PostgresJobStore(url: "postgres://nobody@127.0.0.1:1/none", options: options)
            Issue.record("opened a store on port 1")
        } catch let error as JobStoreError {
            #expect(error.code == .backend && error.message.contains("127.0.0.1:1"), "\(error)")
        }
    }

    @Test("two processes opening one new database at once: one creates the schema, the other finds it; reopening changes nothing",
          .enabled(if: postgresURL != nil, Comment(rawValue: postgresSkipped)))
    func migration() async throws {
        try await withTestDatabase(try #require(postgresURL)) { url in
            async let first = PostgresJobStore(url: url)
            async let second = PostgresJobStore(url: url)
            let (a, b) = try await (first, second)
            _ = try await a.insert(NewJob(name: "kept", queue: "q"))
            await a.close()
            await b.close()
            let again = try await PostgresJobStore(url: url)
            #expect(try await again.count(.pending) == 1)
            await again.close()
            try await onServer(url) { client in
                for try await version in try await client.query("SELECT value FROM jobstore_meta WHERE key = 'schema_version'").decode(Int64.self) {
                    #expect(version == Schema.version)
                }
                // A newer program's schema is refused, not used.
                try await client.query("UPDATE jobstore_meta SET value = 99 WHERE key = 'schema_version'")
            }
            do {
                _ = try await PostgresJobStore(url: url)
                Issue.record("opened a schema of version 99")
            } catch let error as JobStoreError {
                #expect(error.code == .newerFormat && error.message.contains("99"))
            }
        }
    }

    @Test("two schedulers on one database (two stores, as two machines would have) burn down 20,000 jobs, each run exactly once; an idle one wakes for the other's insert",
          .enabled(if: postgresURL != nil, Comment(rawValue: postgresSkipped)))
    func twoSchedulers() async throws {
        try await withTestDatabase(try #require(postgresURL)) { url in
            let first = try await PostgresJobStore(url: url)
            let second = try await PostgresJobStore(url: url)
            defer { Task { await first.close(); await second.close() } }
            // Idle first: the second store's insert wakes the first's scheduler (NOTIFY).
            let recorder = Recorder()
            try await withScheduler(first, ["remote": { recorder.record("ran", $0.job) }]) {
                try await Task.sleep(for: .milliseconds(100))
                _ = try await second.insert(NewJob(name: "from-afar", queue: "remote"))
                try await recorder.wait(for: 1, "ran")
            }
            // Burn-down: both at once, 8 handlers each.
            _ = try await first.insert((0..<20_000).map { NewJob(name: "work", queue: "q", priority: UInt8($0 % 3)) })
            let runs = Lock<[JobID: Int]>([:])
            let handler: JobHandler = { context in runs.withLock { $0[context.job.id, default: 0] += 1 } }
            try await withScheduler(first, ["q": handler]) {
                try await withScheduler(second, ["q": handler]) {
                    try await waitUntil("20,000 succeeded") { try await first.queueDepths()["q"]?[.succeeded] == 20_000 }
                }
            }
            let counts = runs.withLock { $0 }
            #expect(counts.count == 20_000 && counts.values.allSatisfy { $0 == 1 })
            try await expectConsistent(second)
        }
    }

    @Test("a job cancelled through another store stops its handler in this one (the cancel notification)",
          .enabled(if: postgresURL != nil, Comment(rawValue: postgresSkipped)))
    func cancelAcrossStores() async throws {
        try await withTestDatabase(try #require(postgresURL)) { url in
            let worker = try await PostgresJobStore(url: url)
            let operator_ = try await PostgresJobStore(url: url)
            let long = try await operator_.insert(NewJob(name: "long", queue: "q"))
            let recorder = Recorder()
            try await withScheduler(worker, ["q": waitingForCancellation(recorder)]) {
                try await recorder.wait(for: 1, "start")
                _ = try await operator_.cancel(long.id)
                try await recorder.wait(for: 1, "cancelled")
            }
            #expect(try await worker.job(long.id)?.state == .cancelled)
            await worker.close()
            await operator_.close()
        }
    }
}
