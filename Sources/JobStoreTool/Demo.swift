import ArgumentParser
import Foundation
import JobStore

/// `jobstore demo`: embeds a store, runs workers on it, then shows the admin tool on the result.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a short demonstration: enqueue jobs and a pipeline, run workers, inspect the store with the admin commands.")

    @Option(help: "Directory for the demo store (default: a new temporary directory, removed afterwards).")
    var dir: String?

    func run() async throws {
        let path = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-demo-\(UUID().uuidString)").path
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
        if FileManager.default.fileExists(atPath: path + "/data.mdb") {
            throw ValidationError("\(path) already holds a store; give a new directory")
        }
        print("== JobStore demo (\(JobRepository.storageLibraryVersion)), store at \(path)\n")
        let store = try JobRepository(path: path)
        let feed = store.changes()
        let events = Task {
            var counts: [JobChange.Kind: Int] = [:]
            for await event in feed {
                if case .change(let change) = event { counts[change.kind, default: 0] += 1 }
            }
            return counts
        }

        print("1. Enqueue jobs in two queues, with priorities, a delay and a unique key.")
        var new: [NewJob] = []
        for n in 1...6 {
            new.append(NewJob(name: "send-email", queue: "mail", payload: Array("to: user\(n)@example.com".utf8), priority: UInt8(n % 3), maxAttempts: 3))
        }
        for n in 1...4 {
            new.append(NewJob(name: "resize-image", queue: "media", payload: Array("photo-\(n).jpg".utf8), priority: 5))
        }
        new.append(NewJob(name: "send-digest", queue: "mail", runAt: Timestamp.now.adding(.seconds(3600))))
        let inserted = try await store.insert(new)
        let report = try await store.insert(NewJob(name: "daily-report", queue: "media", uniqueKey: "report:today"))
        let again = try await store.insert(NewJob(name: "daily-report", queue: "media", uniqueKey: "report:today"))
        print("   \(inserted.count + 1) jobs inserted; a second 'report:today' returned the same job: \(again.id == report.id)")
        _ = try await store.enqueue(PipelineDefinition(name: "release", version: 3, steps: [
            PipelineStep("build", job: NewJob(name: "build", queue: "ci", payload: Array("make all".utf8))),
            PipelineStep("test-linux", job: NewJob(name: "test", queue: "ci", payload: Array("linux".utf8), maxAttempts: 2), dependsOn: ["build"]),
            PipelineStep("test-macos", job: NewJob(name: "test", queue: "ci", payload: Array("macos".utf8)), dependsOn: ["build"]),
            PipelineStep("package", job: NewJob(name: "package", queue: "ci"), dependsOn: ["test-linux", "test-macos"]),
            PipelineStep("deploy", job: NewJob(name: "deploy", queue: "ci", priority: 9), dependsOn: ["package"]),
        ]))
        print("   pipeline 'release' v3 enqueued (5 steps): build pending, the other steps waiting for their dependencies")
        let nightly = try await store.enqueue(PipelineDefinition(name: "nightly-import", steps: [
            PipelineStep("fetch", job: NewJob(name: "fetch", queue: "etl")),
            PipelineStep("transform", job: NewJob(name: "transform", queue: "etl", maxAttempts: 1), dependsOn: ["fetch"]),
            PipelineStep("thumbnails", job: NewJob(name: "thumbnails", queue: "etl"), dependsOn: ["fetch"]),
            PipelineStep("publish", job: NewJob(name: "publish", queue: "etl"), dependsOn: ["transform", "thumbnails"]),
        ]))
        print("   pipeline 'nightly-import' enqueued (4 steps); its 'transform' step will fail for good")

        print("\n2. A worker dies holding a job: its lease expires and the job is rescued.")
        let deadWorker = OwnerToken.random()
        guard let orphan = try await store.claim(queue: "media", lease: .milliseconds(50), owner: deadWorker).first else {
            throw CommandFailure("no media job to claim")
        }
        try await Task.sleep(for: .milliseconds(80))
        let rescued = try await store.rescueExpiredLeases()
        print("   rescued \(rescued.map(\.name)) — back to \(rescued.first?.state.description ?? "?")")

        print("\n3. Three async workers claim (priority, then run time, then age) and complete jobs;")
        print("   the first attempts at user3's email and at the pipeline's linux tests fail and are retried 100 ms later;")
        print("   each pipeline step is released in the transaction that completes its last dependency;")
        print("   a step that fails for good cancels what depends on it, and its pipeline ends failed.")
        let failedOnce: Set<String> = [inserted[2].id.description, "test:linux"]
        let completed = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 1...3 {
                group.addTask {
                    let owner = OwnerToken.random()
                    var done = 0
                    var idle = 0
                    while idle < 5 {
                        let jobs = try await store.claim(limit: 2, lease: .seconds(30), owner: owner)
                        if jobs.isEmpty {
                            idle += 1
                            try await Task.sleep(for: .milliseconds(50))
                            continue
                        }
                        idle = 0
                        for job in jobs {
                            if job.name == "transform" {
                                try await store.fail(job.id, owner: owner, error: "schema mismatch in column 7", retryAt: nil)
                                print("   worker \(worker): \(job.name) failed for good: 'publish' is cancelled")
                            } else if job.attempts == 1 && (failedOnce.contains(job.id.description) || failedOnce.contains("\(job.name):\(String(decoding: job.payload, as: UTF8.self))")) {
                                try await store.fail(job.id, owner: owner, error: "SMTP 451: try again later", retryAt: Timestamp.now.adding(.milliseconds(100)))
                                print("   worker \(worker): \(job.name) #\(job.attempts) failed, retry scheduled")
                            } else {
                                try await store.complete(job.id, owner: owner, result: Array("ok".utf8))
                                print("   worker \(worker): \(job.name) [\(job.queue), priority \(job.priority)] done")
                                done += 1
                            }
                        }
                    }
                    return done
                }
            }
            var total = 0
            for try await done in group { total += done }
            return total
        }
        print("   \(completed) jobs completed")

        print("\n4. The dead worker comes back and reports its job: refused, the job is not overwritten.")
        do {
            try await store.complete(orphan.id, owner: deadWorker)
        } catch let error as JobStoreError where error.code == .leaseLost {
            print("   \(error.message)")
        }

        let writer = store.writerStatistics
        print("\n5. Every write went through the writer thread: \(writer.requests) requests in \(writer.commits) commits.")
        store.close()
        let seen = await events.value
        print("   The change feed saw \(seen[.inserted] ?? 0) inserts and \(seen[.updated] ?? 0) updates.")

        print("\n6. The admin tool on the result (`jobstore stats`, `jobs list`, `pipelines list`, `pipelines show`, `verify`):\n")
        print("$ jobstore stats \(path)")
        try Stats.parse([path]).run()
        print("\n$ jobstore jobs list \(path) --limit 20")
        try Jobs.List.parse([path, "--limit", "20"]).run()
        print("\n$ jobstore pipelines list \(path)")
        try Pipelines.List.parse([path]).run()
        print("\n$ jobstore pipelines show \(path) \(nightly.id)")
        try Pipelines.Show.parse([path, nightly.id.description]).run()
        print("\n$ jobstore verify \(path)")
        try VerifyCommand.parse([path]).run()
        if dir != nil { print("\nThe store stays at \(path); try `jobstore jobs show \(path) <id>`.") }
    }
}
