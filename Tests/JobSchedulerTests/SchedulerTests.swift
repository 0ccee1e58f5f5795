import Foundation
import Locking
import JobScheduler
import JobStore
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// What only the embedded store shows: prefetch, retention with `verify()`, queue control and
/// wake-ups across processes, a killed process's leases. The behaviour every backend shares
/// (exactly once, priorities, delays, retries, handler decisions, pipelines, cancellation,
/// shutdown, rescue) is in ConformanceTests, run on LMDB and on PostgreSQL.
@Suite("Scheduler: runs jobs and pipelines from the store", .serialized)
struct SchedulerTests {
    @Test("jobs claimed ahead (prefetch) but not started are given back at once when the scheduler stops")
    func prefetchedJobsReleased() async throws {
        try await withStore { store, _ in
            let jobs = try await store.insert((0..<10).map { _ in NewJob(name: "slow", queue: "q") })
            let recorder = Recorder()
            var options = testOptions(concurrency: 1)
            options.prefetch = 3
            options.shutdownTimeout = .zero
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "q") { context in
                recorder.record("start", context.job)
                try await Task.sleep(for: .seconds(3600))
            }
            try await running(scheduler) {
                try await recorder.wait(for: 1, "start")
                #expect(try store.count(.running) == 4)  // one started, three waiting in the process
            }
            #expect(recorder.events("start").count == 1)
            for job in jobs {
                let given = try #require(try store.job(job.id))
                #expect(given.state == .pending && given.attempts == 0 && given.lease == nil)
            }
            try expectConsistent(store)
        }
    }

    @Test("a handler that ignores its cancellation does not keep the scheduler from stopping: run() returns after the grace, its job left running under its lease")
    func handlerIgnoringCancellation() async throws {
        try await withStore { store, _ in
            let job = try await store.insert(NewJob(name: "stuck", queue: "q"))
            let parked = Lock<CheckedContinuation<Void, Never>?>(nil)
            var options = testOptions(concurrency: 1)
            options.shutdownTimeout = .milliseconds(200)
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "q") { _ in
                await withCheckedContinuation { continuation in parked.withLock { $0 = continuation } }  // deaf to cancellation
            }
            let service = Task { try await scheduler.run() }
            while parked.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }  // not a store change: polled
            let stopped = ContinuousClock.now
            service.cancel()
            try await service.value  // before: never returned
            #expect(ContinuousClock.now - stopped < .seconds(20))  // the 5 s grace, then the helpers
            #expect(try store.job(job.id)?.state == .running)  // rescued when its lease expires
            parked.withLock { $0.take() }?.resume()
            try expectConsistent(store)
        }
    }

    @Test("retention: the periodic pass deletes jobs and pipelines finished longer ago than their state's retention")
    func retention() async throws {
        try await withStore { store, _ in
            let done = try await store.insert(NewJob(name: "done", queue: "q"))
            let kept = try await store.insert(NewJob(name: "kept", queue: "q"))
            let pipeline = try await store.enqueue(PipelineDefinition(name: "p", steps: [PipelineStep("s", job: NewJob(name: "s", queue: "q"))]))
            try await store.update(kept.id) { $0.maxAttempts = 1 }
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "q") { context in
                recorder.record("ran", context.job)
                if context.job.name == "kept" { throw TestFailure("fails for good") }
            }
            try await running(scheduler) { try await recorder.wait(for: 3, "ran") }
            try await waitUntil(store, "the pipeline to finish") { try store.pipeline(pipeline.id)?.state == .succeeded }
            // Succeeded ones go at once, failed ones are kept a week.
            var options = testOptions()
            options.retention = [.succeeded: .zero, .failed: .seconds(7 * 86_400)]
            var pruner = Scheduler(backend: store, options: options)
            pruner.handle(queue: "q") { _ in }
            try await running(pruner) {
                try await waitUntil(store, "the succeeded job pruned") { try store.job(done.id) == nil && store.pipeline(pipeline.id) == nil }
            }
            #expect(try store.job(kept.id)?.state == .failed)
            #expect(try store.counts().values.reduce(0, +) == 1)
            try expectConsistent(store)
        }
    }

    @Test("a queue paused by another process is honoured: its jobs wait while other queues run; resumed, they run")
    func pauseFromAnotherProcess() async throws {
        try await withStore { store, directory in
            func helper(_ arguments: String...) async throws {
                let child = Process()
                child.executableURL = try helperExecutable("JobStoreTestHelper")
                child.arguments = arguments
                try child.run()
                if try await exitStatus(of: child) != 0 { throw TestFailure("helper \(arguments) failed") }
            }
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "held") { recorder.record("held", $0.job) }
            scheduler.handle(queue: "free") { recorder.record("free", $0.job) }
            try await running(scheduler) {
                try await helper("pause", directory.path, "held")
                let waiting = try await store.insert(NewJob(name: "w", queue: "held"))
                _ = try await store.insert(NewJob(name: "f", queue: "free"))
                // The scheduler saw both inserts (it ran the later one) and left the paused queue alone.
                try await recorder.wait(for: 1, "free")
                #expect(recorder.events("held").isEmpty)
                #expect(try store.job(waiting.id)?.state == .pending)
                try await helper("resume", directory.path, "held")
                try await recorder.wait(for: 1, "held")
            }
        }
    }

    @Test(
        "an idle scheduler wakes for a job another process enqueues (also when both write through the map, whose writes raise no inotify event of their own)",
        arguments: [false, true])
    func wakesForAnotherProcess(writeMap: Bool) async throws {
        try await withStore(writeMap: writeMap) { store, directory in
            let recorder = Recorder()
            var options = testOptions()
            options.rescueInterval = .seconds(3600)  // its once-per-interval look for work must not be what wakes it
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "remote") { recorder.record("ran", $0.job) }
            try await running(scheduler) {
                // Let the scheduler go idle first: its first claim found nothing.
                try await Task.sleep(for: .milliseconds(100))
                let child = Process()
                child.executableURL = try helperExecutable("JobStoreTestHelper")
                child.arguments = ["insert", directory.path, "from-afar", "remote"]
                if writeMap { child.environment = ProcessInfo.processInfo.environment.merging(["JOBSTORE_TEST_WRITE_MAP": "1"]) { $1 } }
                try child.run()
                #expect(try await exitStatus(of: child) == 0)
                try await recorder.wait(for: 1, "ran")
            }
            #expect(recorder.events("ran").first?.job.name == "from-afar")
        }
    }

    @Test("a job whose outcome waits for a slow write keeps its lease: it is not rescued meanwhile and runs once")
    func leaseHeldUntilOutcomeWritten() async throws {
        try await withStore { store, _ in
            let jobs = try await store.insert((0..<3).map { _ in NewJob(name: "quick", queue: "q") })
            let backend = SlowBackend(store)
            backend.nextOutcomesDelay.withLock { $0 = .seconds(5) }  // longer than the lease
            let recorder = Recorder()
            var options = testOptions()
            options.lease = .seconds(2)
            options.rescueInterval = .milliseconds(250)
            var scheduler = Scheduler(backend: backend, options: options)
            scheduler.handle(queue: "q") { recorder.record("ran", $0.job) }
            try await running(scheduler) {
                try await waitUntil(store, "3 succeeded") { try store.count(.succeeded) == 3 }
            }
            // Before: the finished jobs' leases were no longer extended, so the rescue pass took
            // them back while their outcomes waited, and each ran twice.
            #expect(recorder.events("ran").map(\.job.id).sorted() == jobs.map(\.id).sorted())
            for job in jobs {
                let stored = try #require(try store.job(job.id))
                #expect(stored.attempts == 1 && stored.errors.isEmpty, "\(stored.attempts) \(stored.errors)")
            }
            try expectConsistent(store)
        }
    }

    @Test("a lease extension that stalls past the lease does not let the scheduler's own rescue pass take the job it runs")
    func rescuePassSparesOwnJobs() async throws {
        try await withStore { store, _ in
            let job = try await store.insert(NewJob(name: "long", queue: "q"))
            let backend = SlowBackend(store)
            backend.nextExtensionDelay.withLock { $0 = .seconds(5) }  // the periodic extension, stuck
            let recorder = Recorder()
            var options = testOptions()
            options.lease = .seconds(2)
            options.rescueInterval = .milliseconds(250)
            var scheduler = Scheduler(backend: backend, options: options)
            scheduler.handle(queue: "q") { context in
                recorder.record("ran", context.job)
                try await Task.sleep(for: .seconds(6))
            }
            try await running(scheduler) { try await waitForState(store, job.id, .succeeded) }
            // Before: the rescue pass found the lease expired while the extension was stuck,
            // put the job back to pending, and it ran a second time.
            let stored = try #require(try store.job(job.id))
            #expect(recorder.events("ran").count == 1, "\(recorder.events("ran").map { ($0.at, $0.job.attempts) }) \(stored.errors)")
            #expect(stored.attempts == 1 && stored.errors.isEmpty, "\(stored.errors)")
            try expectConsistent(store)
        }
    }

    @Test("a lease extension that read a job's finished claim, written after the job was claimed again, does not stop the new run")
    func staleExtensionSparesNewClaim() async throws {
        try await withStore { store, _ in
            let job = try await store.insert(NewJob(name: "again", queue: "q", maxAttempts: 3))
            let backend = SlowBackend(store)
            // The first extension holds the first attempt's claim until the transaction that
            // writes its failure — and, the retry being due at once, claims the job again — is done.
            backend.nextExtensionAfterOutcomes.withLock { $0 = true }
            let recorder = Recorder()
            var options = testOptions()
            options.lease = .milliseconds(600)  // extended every 200 ms
            options.rescueInterval = .milliseconds(250)
            options.retry = RetryPolicy(base: .zero, jitter: 0)
            var scheduler = Scheduler(backend: backend, options: options)
            scheduler.handle(queue: "q") { context in
                recorder.record("ran", context.job)
                try await Task.sleep(for: .milliseconds(500))
                if context.attempt == 1 { throw TestFailure("first attempt fails") }
            }
            try await running(scheduler) {
                try await waitUntil(store, "the job to end") { try store.job(job.id)?.state.isTerminal == true }
            }
            // Before: the extension's "lost" answer (for the first claim) stopped the second run,
            // whose lease then expired; the rescue failed it "lease expired" and it ran a third time.
            let stored = try #require(try store.job(job.id))
            #expect(stored.state == .succeeded && stored.attempts == 2, "\(stored.state) \(stored.attempts) \(stored.errors)")
            #expect(stored.errors.map(\.message) == ["first attempt fails"])
            #expect(recorder.events("ran").map(\.job.attempts) == [1, 2])
            try expectConsistent(store)
        }
    }

    @Test("a process holding leases is killed: once the leases expire a new scheduler rescues and runs its jobs, each once")
    func rescueAfterCrash() async throws {
        try await withStore { store, directory in
            let jobs = try await store.insert((0..<5).map { _ in NewJob(name: "orphan", queue: "q") })
            let child = Process()
            child.executableURL = try helperExecutable("JobStoreTestHelper")
            child.arguments = ["claim-and-hang", directory.path, "3", "200", "q"]
            let output = Pipe()
            child.standardOutput = output
            try child.run()
            var text = ""
            while !text.contains("claimed\n") {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { throw TestFailure("the child ended before claiming") }
                text += String(decoding: data, as: UTF8.self)
            }
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            let orphaned = Set(try text.split(separator: "\n").dropLast().map { try JobID(parsing: String($0)) })
            #expect(orphaned.count == 3)

            let recorder = Recorder()
            var options = testOptions()
            options.rescueInterval = .milliseconds(100)
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "q") { recorder.record("ran", $0.job) }
            try await running(scheduler) { try await recorder.wait(for: 5, "ran") }
            let ran = recorder.events("ran")
            #expect(Set(ran.map(\.job.id)) == Set(jobs.map(\.id)) && ran.count == 5)
            for entry in ran where orphaned.contains(entry.job.id) {
                #expect(entry.job.attempts == 2 && entry.job.errors.last?.message.contains("lease expired") == true)
            }
            try expectConsistent(store)
        }
    }
}
