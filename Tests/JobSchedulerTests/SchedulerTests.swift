import Foundation
import Locking
import JobScheduler
import JobStore
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

@Suite("Scheduler: runs jobs and pipelines from the store", .serialized)
struct SchedulerTests {
    @Test("every job runs exactly once when nothing fails (10,000 jobs, 8 handlers at once)")
    func exactlyOnce() async throws {
        try await withStore { store, _ in
            let jobs = try await store.insert((0..<10_000).map { NewJob(name: "work", queue: $0 % 2 == 0 ? "a" : "b", priority: UInt8($0 % 4)) })
            let runs = Lock<[JobID: Int]>([:])
            let concurrent = Atomic<Int>(0)
            let peak = Atomic<Int>(0)
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions(concurrency: 8))
            let handler: JobHandler = { context in
                let now = concurrent.wrappingAdd(1, ordering: .relaxed).newValue
                peak.max(now, ordering: .relaxed)
                runs.withLock { $0[context.job.id, default: 0] += 1 }
                concurrent.wrappingSubtract(1, ordering: .relaxed)
                recorder.record("ran", context.job)
            }
            scheduler.handle(queue: "a", handler)
            scheduler.handle(queue: "b", handler)
            try await running(scheduler) {
                try await recorder.wait(for: 10_000, "ran")
                try await waitUntil(store, "10,000 succeeded") { try store.count(.succeeded) == 10_000 }
            }
            let counts = runs.withLock { $0 }
            #expect(counts.count == 10_000 && counts.values.allSatisfy { $0 == 1 })
            #expect(Set(counts.keys) == Set(jobs.map(\.id)))
            #expect(peak.load(ordering: .relaxed) <= 8)
            #expect(try store.count(.succeeded) == 10_000)
            try expectConsistent(store)
        }
    }

    @Test("with one handler, jobs run by priority, then runAt, then age")
    func priorityOrder() async throws {
        try await withStore { store, _ in
            let jobs = try await store.insert((0..<40).map { NewJob(name: "p", queue: "q", priority: UInt8(($0 * 7) % 5)) })
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions(concurrency: 1))
            scheduler.handle(queue: "q") { recorder.record("ran", $0.job) }
            try await running(scheduler) { try await recorder.wait(for: 40, "ran") }
            let order = recorder.events("ran").map(\.job.id)
            let expected = jobs.sorted { ($0.priority, $1.createdAt, $1.id) > ($1.priority, $0.createdAt, $0.id) }.map(\.id)
            #expect(order == expected)
        }
    }

    @Test("no delayed job starts before its runAt, and the scheduler wakes for it by itself")
    func delayedJobs() async throws {
        try await withStore { store, _ in
            let base = Timestamp.now
            let delays = [300, 100, 200, 0, 150]
            _ = try await store.insert(delays.map { NewJob(name: "later", queue: "q", runAt: base.adding(.milliseconds($0))) })
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "q") { recorder.record("ran", $0.job) }
            try await running(scheduler) { try await recorder.wait(for: delays.count, "ran") }
            for entry in recorder.events("ran") {
                #expect(entry.at >= entry.job.runAt, "job due at \(entry.job.runAt) started at \(entry.at)")
            }
        }
    }

    @Test("a failing handler is retried with backoff while attempts remain, each error kept; then the job fails")
    func retriesWithBackoff() async throws {
        try await withStore { store, _ in
            let flaky = try await store.insert(NewJob(name: "flaky", queue: "q", maxAttempts: 3))
            let doomed = try await store.insert(NewJob(name: "doomed", queue: "q", maxAttempts: 2))
            struct Boom: Error, CustomStringConvertible { var description: String }
            let recorder = Recorder()
            var options = testOptions()
            options.retry = RetryPolicy(base: .milliseconds(50), jitter: 0)
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "q") { context in
                recorder.record("attempt", context.job)
                if context.job.name == "doomed" || context.attempt < 3 { throw Boom(description: "boom \(context.attempt)") }
            }
            try await running(scheduler) {
                try await waitForState(store, flaky.id, .succeeded)
                try await waitForState(store, doomed.id, .failed)
            }
            let attempts = recorder.events("attempt").filter { $0.job.id == flaky.id }
            #expect(attempts.map(\.job.attempts) == [1, 2, 3])
            // Backoff: 50 ms after the first failure, 100 ms after the second (no jitter).
            #expect(attempts[1].at.microseconds - attempts[0].at.microseconds >= 50_000)
            #expect(attempts[2].at.microseconds - attempts[1].at.microseconds >= 100_000)
            let done = try #require(try store.job(flaky.id))
            #expect(done.errors.map(\.message) == ["boom 1", "boom 2"] && done.errors.map(\.attempt) == [1, 2])
            let failed = try #require(try store.job(doomed.id))
            #expect(failed.state == .failed && failed.errors.count == 2)
        }
    }

    @Test("a handler can snooze (the attempt does not count), ask for a retry, or discard; an unknown job name fails clearly")
    func handlerDecisions() async throws {
        try await withStore { store, _ in
            let snoozer = try await store.insert(NewJob(name: "snooze", queue: "q", maxAttempts: 1))
            let discarded = try await store.insert(NewJob(name: "discard", queue: "q", maxAttempts: 5))
            let unknown = try await store.insert(NewJob(name: "mystery", queue: "named"))
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "q") { context in
                recorder.record(context.job.name, context.job)
                switch context.job.name {
                case "snooze" where recorder.events("snooze").count == 1: context.snooze(for: .milliseconds(30))
                case "discard": context.discard(reason: "bad input: no such account")
                default: context.setResult(Array("done".utf8))
                }
            }
            scheduler.handle(job: "known", queue: "named") { _ in }
            try await running(scheduler) {
                try await waitForState(store, snoozer.id, .succeeded)
                try await waitForState(store, discarded.id, .failed)
                try await waitForState(store, unknown.id, .failed)
            }
            let snoozed = try #require(try store.job(snoozer.id))
            #expect(snoozed.attempts == 1 && snoozed.result == Array("done".utf8))  // ran twice, one attempt counted
            #expect(try store.job(discarded.id)?.errors.last?.message == "bad input: no such account")
            #expect(try store.job(discarded.id)?.attempts == 1)
            #expect(try store.job(unknown.id)?.errors.last?.message.contains("no handler is registered for job 'mystery'") == true)
        }
    }

    @Test("a diamond runs in dependency order, its independent steps at the same time; a failing step cascades")
    func pipelines() async throws {
        try await withStore { store, _ in
            func step(_ name: String, _ dependsOn: [String] = [], attempts: UInt16 = 3) -> PipelineStep {
                PipelineStep(name, job: NewJob(name: name, queue: "ci", maxAttempts: attempts), dependsOn: dependsOn)
            }
            let diamond = try await store.enqueue(PipelineDefinition(name: "diamond", steps: [
                step("build"), step("test-a", ["build"]), step("test-b", ["build"]), step("package", ["test-a", "test-b"]),
            ]))
            let broken = try await store.enqueue(PipelineDefinition(name: "broken", steps: [
                step("fetch"), step("transform", ["fetch"], attempts: 1), step("publish", ["transform"]), step("archive", ["fetch"]),
            ]))
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "ci") { context in
                let name = context.job.name
                recorder.record("start:\(name)", context.job)
                if name == "test-a" || name == "test-b" {
                    // Each test step waits until the other started: they run at the same time, or this hangs.
                    let other = name == "test-a" ? "start:test-b" : "start:test-a"
                    try await recorder.wait(until: { $0.contains { $0.event == other } }, other)
                }
                if name == "transform" { throw TestFailure("schema mismatch") }
                recorder.record("end:\(name)", context.job)
            }
            try await running(scheduler) {
                try await waitUntil(store, "both pipelines finished") {
                    try store.pipeline(diamond.id)?.state.isTerminal == true && store.pipeline(broken.id)?.state.isTerminal == true
                }
            }
            let events = recorder.entries.map(\.event)
            func index(_ event: String) -> Int { events.firstIndex(of: event) ?? -1 }
            #expect(index("end:build") < index("start:test-a") && index("end:build") < index("start:test-b"))
            #expect(index("end:test-a") < index("start:package") && index("end:test-b") < index("start:package"))
            #expect(try store.pipeline(diamond.id)?.state == .succeeded)
            #expect(try store.pipeline(broken.id)?.state == .failed)
            #expect(!events.contains("start:publish"))  // cancelled by the cascade, never run
            #expect(events.contains("end:archive"))      // independent of the failure: ran
            try expectConsistent(store)
        }
    }

    @Test("cancelling a running job cancels its handler and the job ends cancelled; a cancelled pending job never runs")
    func cancellation() async throws {
        try await withStore { store, _ in
            let long = try await store.insert(NewJob(name: "long", queue: "q"))
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "q") { context in
                recorder.record("start", context.job)
                do {
                    try await Task.sleep(for: .seconds(3600))
                } catch {
                    recorder.record("cancelled", context.job)
                    throw error
                }
            }
            try await running(scheduler) {
                try await recorder.wait(for: 1, "start")
                try await store.cancel(long.id)
                try await recorder.wait(for: 1, "cancelled")
                let never = try await store.insert(NewJob(name: "never", queue: "q", runAt: Timestamp.now.adding(.seconds(3600))))
                try await store.cancel(never.id)
            }
            #expect(try store.job(long.id)?.state == .cancelled)
            #expect(recorder.events("start").count == 1)
            try expectConsistent(store)
        }
    }

    @Test("a graceful shutdown lets running handlers finish, then gives back the ones that do not: nothing lost, leases released")
    func gracefulShutdown() async throws {
        try await withStore { store, _ in
            let quick = try await store.insert((0..<3).map { _ in NewJob(name: "quick", queue: "q") })
            let stuck = try await store.insert((0..<2).map { _ in NewJob(name: "stuck", queue: "q") })
            let recorder = Recorder()
            var options = testOptions()
            options.shutdownTimeout = .milliseconds(300)
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "q") { context in
                recorder.record("start", context.job)
                if context.job.name == "quick" {
                    // Finishes only once the shutdown began: a job in flight that completes.
                    try await recorder.wait(until: { $0.contains { $0.event == "shutdown" } }, "the shutdown")
                    recorder.record("done", context.job)
                    return
                }
                try await Task.sleep(for: .seconds(3600))  // ignores the shutdown until cancelled
            }
            let group = ServiceGroup(services: [scheduler], logger: .init(label: "test"))
            let service = Task { try await group.run() }
            try await recorder.wait(for: 5, "start")
            await group.triggerGracefulShutdown()
            recorder.record("shutdown", quick[0])
            try await service.value
            for job in quick { #expect(try store.job(job.id)?.state == .succeeded) }
            for job in stuck {
                let given = try #require(try store.job(job.id))
                #expect(given.state == .pending && given.lease == nil && given.attempts == 0, "\(given.state), attempts \(given.attempts)")
            }
            try expectConsistent(store)
        }
    }

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
            func helper(_ arguments: String...) throws {
                let child = Process()
                child.executableURL = try helperExecutable("JobStoreTestHelper")
                child.arguments = arguments
                try child.run()
                child.waitUntilExit()
                if child.terminationStatus != 0 { throw TestFailure("helper \(arguments) failed") }
            }
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "held") { recorder.record("held", $0.job) }
            scheduler.handle(queue: "free") { recorder.record("free", $0.job) }
            try await running(scheduler) {
                try helper("pause", directory.path, "held")
                let waiting = try await store.insert(NewJob(name: "w", queue: "held"))
                _ = try await store.insert(NewJob(name: "f", queue: "free"))
                // The scheduler saw both inserts (it ran the later one) and left the paused queue alone.
                try await recorder.wait(for: 1, "free")
                #expect(recorder.events("held").isEmpty)
                #expect(try store.job(waiting.id)?.state == .pending)
                try helper("resume", directory.path, "held")
                try await recorder.wait(for: 1, "held")
            }
        }
    }

    @Test("a rate-limited queue runs all its jobs, no faster than its limit: the scheduler sleeps until the next token")
    func rateLimited() async throws {
        try await withStore { store, _ in
            _ = try await store.insert((0..<15).map { _ in NewJob(name: "call", queue: "api") })
            try store.setRateLimit(queue: "api", starts: 5, per: .milliseconds(300))
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "api") { recorder.record("ran", $0.job) }
            try await running(scheduler) { try await recorder.wait(for: 15, "ran") }
            let times = recorder.events("ran").map(\.at.microseconds)
            // A burst of 5, then 5 per 300 ms: the 15th starts at least 600 ms after the first.
            #expect(times.max()! - times.min()! >= 590_000)
        }
    }

    @Test("an idle scheduler wakes for a job another process enqueues")
    func wakesForAnotherProcess() async throws {
        try await withStore { store, directory in
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "remote") { recorder.record("ran", $0.job) }
            try await running(scheduler) {
                // Let the scheduler go idle first: its first claim found nothing.
                try await Task.sleep(for: .milliseconds(100))
                let child = Process()
                child.executableURL = try helperExecutable("JobStoreTestHelper")
                child.arguments = ["insert", directory.path, "from-afar", "remote"]
                try child.run()
                child.waitUntilExit()
                #expect(child.terminationStatus == 0)
                try await recorder.wait(for: 1, "ran")
            }
            #expect(recorder.events("ran").first?.job.name == "from-afar")
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
