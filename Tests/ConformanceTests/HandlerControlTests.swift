import Foundation
import InMemoryTracing
import JobScheduler
import JobStore
import Locking
import Logging
import Testing
import TestSupport
import Tracing

/// A job that takes its time: politely (its sleep ends at cancellation) or not (it ignores it).
struct Slow: JobDefinition {
    static let name = "slow"
    static let options = JobOptions(queue: "slow", maxAttempts: 2, timeout: .milliseconds(100))
    var ignoresCancellation: Bool
}

@Suite("Conformance: timeouts, middleware and tracing on LMDB and on PostgreSQL", .serialized)
struct HandlerControlTests {
    @Test("a handler past its timeout is cancelled and its attempt fails 'timed out after …', retried by its policy; one that ignores cancellation is reported and its job never runs twice at once",
          arguments: Backend.available)
    func timeouts(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let polite = try await store.enqueue(Slow(ignoresCancellation: false))
            let stubborn = try await store.enqueue(Slow(ignoresCancellation: true))
            let runs = Recorder()
            let messages = Lock<[(Logger.Level, String)]>([])
            var options = testOptions()
            options.timeoutGrace = .milliseconds(150)
            try await withScheduler(store, options: options, [:], setup: [
                Typed(Slow.self) { slow, context in
                    runs.record("start", context.job)
                    defer { runs.record("end", context.job) }
                    if slow.ignoresCancellation {
                        // Deaf to cancellation (and not spinning): runs on until the scheduler has
                        // reported this attempt as ignoring it — however slow the machine.
                        func reports() -> Int { messages.withLock { $0.filter { $0.1.contains("handler ignores cancellation") }.count } }
                        let until = ContinuousClock.now + .seconds(60)
                        while reports() < context.attempt, ContinuousClock.now < until {
                            await withCheckedContinuation { done in
                                DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) { done.resume() }
                            }
                        }
                    } else {
                        try await Task.sleep(for: .seconds(60))
                    }
                },
            ], logger: CapturingLogHandler.logger(messages)) {
                try await waitForState(store, polite.id, .failed)
                try await waitForState(store, stubborn.id, .failed)
            }
            for job in [polite, stubborn] {
                let failed = try #require(try await store.job(job.id))
                #expect(failed.attempts == 2 && failed.errors.map(\.message) == ["timed out after 0.1 seconds", "timed out after 0.1 seconds"], "\(failed.errors)")
            }
            // The stubborn job's runs one after the other: its second started after its first ended.
            let stubbornRuns = runs.entries.filter { $0.job.id == stubborn.id }.map(\.event)
            #expect(stubbornRuns == ["start", "end", "start", "end"], "\(stubbornRuns)")
            let reports = messages.withLock { $0 }.filter { $0.0 == .error && $0.1.contains("handler ignores cancellation") }
            #expect(reports.count == 2, "\(messages.withLock { $0 })")
            // The polite one was cancelled at once: both its runs ended long before the stubborn ones.
            #expect(runs.entries.filter { $0.job.id == polite.id }.map(\.event) == ["start", "end", "start", "end"])
        }
    }

    @Test("middleware runs around every handler, the first added outermost; it sees the job and the outcome, and may replace an error or skip the handler",
          arguments: Backend.available)
    func middleware(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let ok = try await store.insert(NewJob(name: "ok", queue: "m"))
            let bad = try await store.insert(NewJob(name: "bad", queue: "m", maxAttempts: 1))
            let skipped = try await store.insert(NewJob(name: "skip", queue: "m"))
            let trail = Lock<[String]>([])
            @Sendable func note(_ text: String) { trail.withLock { $0.append(text) } }
            let outer = ClosureMiddleware { context, next in
                note("outer before \(context.job.name)")
                do {
                    try await next(context)
                    note("outer after \(context.job.name): returned")
                } catch {
                    note("outer after \(context.job.name): \(error)")
                    throw JobStoreError(.invalidArgument, "wrapped: \(error)")
                }
            }
            let inner = ClosureMiddleware { context, next in
                note("inner before \(context.job.name)")
                if context.job.name == "skip" { return }  // the handler is not run: the job succeeds
                try await next(context)
                note("inner after \(context.job.name)")
            }
            struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
            try await withScheduler(store, options: testOptions(concurrency: 1), ["m": { context in
                note("handler \(context.job.name)")
                if context.job.name == "bad" { throw Boom() }
            }], setup: [Use(outer), Use(inner)]) {
                for job in [ok, bad, skipped] { try await waitUntil("job \(job.name) to finish") { try await store.job(job.id)?.state.isTerminal == true } }
            }
            let notes = trail.withLock { $0 }
            func run(_ name: String) -> [String] { notes.filter { $0.hasSuffix(" \(name)") || $0.contains(" \(name):") } }
            #expect(run("ok") == ["outer before ok", "inner before ok", "handler ok", "inner after ok", "outer after ok: returned"], "\(notes)")
            #expect(run("bad") == ["outer before bad", "inner before bad", "handler bad", "outer after bad: boom"], "\(notes)")
            #expect(run("skip") == ["outer before skip", "inner before skip", "outer after skip: returned"], "\(notes)")
            #expect(try await store.job(bad.id)?.errors.last?.message == "wrapped: boom")
            #expect(try await store.job(skipped.id)?.state == .succeeded)
        }
    }

    @Test("each handler run is a consumer span named after the job, with its id, queue, attempt and outcome; a failure is the span's error status; the handler's own spans are its children",
          arguments: Backend.available)
    func tracing(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let ok = try await store.insert(NewJob(name: "ok", queue: "t"))
            let bad = try await store.insert(NewJob(name: "bad", queue: "t", maxAttempts: 1))
            let dropped = try await store.insert(NewJob(name: "drop", queue: "t"))
            let tracer = InMemoryTracer()
            var options = testOptions()
            options.tracer = tracer
            try await withScheduler(store, options: options, ["t": { context in
                switch context.job.name {
                case "bad": throw JobStoreError(.invalidArgument, "no such account")
                case "drop": context.discard(reason: "spam")
                default: tracer.withSpan("send the mail") { _ in }  // a child of the job's span
                }
            }]) {
                for job in [ok, bad, dropped] { try await waitUntil("job \(job.name) to finish") { try await store.job(job.id)?.state.isTerminal == true } }
            }
            let spans = tracer.finishedSpans
            func span(_ name: String) throws -> FinishedInMemorySpan { try #require(spans.first { $0.operationName == name }, "\(spans.map(\.operationName))") }
            let okSpan = try span("ok")
            #expect(okSpan.kind == .consumer)
            #expect(okSpan.attributes["messaging.message.id"]?.toSpanAttribute() == .string(ok.id.description))
            #expect(okSpan.attributes["messaging.destination.name"]?.toSpanAttribute() == .string("t"))
            #expect(okSpan.attributes["jobstore.job.attempt"]?.toSpanAttribute() == .int64(1))
            #expect(okSpan.attributes["jobstore.job.outcome"]?.toSpanAttribute() == .string("succeeded"))
            #expect(okSpan.status == nil)
            let child = try span("send the mail")
            #expect(child.parentSpanID == okSpan.spanID && child.traceID == okSpan.traceID)
            let badSpan = try span("bad")
            #expect(badSpan.status?.code == .error && badSpan.errors.count == 1)
            #expect(badSpan.attributes["jobstore.job.outcome"]?.toSpanAttribute() == .string("failed"))
            #expect(try span("drop").attributes["jobstore.job.outcome"]?.toSpanAttribute() == .string("discarded"))
        }
    }
}
