import Foundation
import InMemoryTracing
import JobScheduler
import JobStore
import Locking
import Testing
import TestSupport
import Tracing

@Suite("Conformance: a job's headers and own timeout, the trace across enqueue and run, progress — on LMDB and on PostgreSQL", .serialized)
struct HeadersProgressTests {
    @Test("headers and a job's own timeout are stored with the job by every enqueue (one, a batch, a pipeline step, typed with its options) and read back as given",
          arguments: Backend.available)
    func storedFields(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let headers = ["request-id": "r-7", "ünïcode": "välue"]
            let one = try await store.insert(NewJob(name: "one", timeout: .milliseconds(1500), headers: headers))
            #expect(one.timeout == .milliseconds(1500) && one.headers == headers)
            #expect(try await store.job(one.id) == one)
            let batch = try await store.enqueue([NewJob(name: "b1", headers: ["n": "1"]), NewJob(name: "b2", timeout: .seconds(5))])
            for job in batch { #expect(try await store.job(job.id) == job) }
            #expect(batch.map(\.headers) == [["n": "1"], [:]] && batch.map(\.timeout) == [nil, .seconds(5)])
            let pipeline = try await store.enqueue(PipelineDefinition(name: "p", steps: [
                PipelineStep("a", job: NewJob(name: "a", timeout: .seconds(2), headers: ["step": "a"])),
            ]))
            let step = try #require(try await store.pipelineDetails(pipeline.id)?.jobs.first)
            #expect(step.timeout == .seconds(2) && step.headers == ["step": "a"])
            // Typed: options given with the enqueue store their timeout; the definition's own
            // stay the handler's default (nothing stored).
            var options = Slow.options
            options.timeout = .seconds(30)
            let own = try await store.enqueue(Slow(ignoresCancellation: false), options: options)
            let byDefault = try await store.enqueue(Slow(ignoresCancellation: false))
            #expect(own.timeout == .seconds(30) && byDefault.timeout == nil)
            try await expectConsistent(store)
        }
    }

    @Test("a job's own timeout overrides its handler's: shorter, the run is cancelled and fails 'timed out after …'; longer, a slow run succeeds past the handler's default",
          arguments: Backend.available)
    func ownTimeout(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            // The handler of "slow" has a 100 ms default; "patient" asks for 60 s and takes 400 ms.
            var long = Slow.options
            long.timeout = .seconds(60)
            let patient = try await store.enqueue(Slow(ignoresCancellation: false), options: long)
            // An untyped handler without a timeout; the job's own is 100 ms.
            let hasty = try await store.insert(NewJob(name: "sleepy", queue: "t", maxAttempts: 1, timeout: .milliseconds(100)))
            let unlimited = try await store.insert(NewJob(name: "sleepy", queue: "t", maxAttempts: 1))
            try await withScheduler(store, ["t": { _ in try await Task.sleep(for: .milliseconds(400)) }], setup: [
                Typed(Slow.self) { _, _ in try await Task.sleep(for: .milliseconds(400)) },
            ]) {
                for job in [patient, hasty, unlimited] { try await waitUntil("job \(job.name) to finish") { try await store.job(job.id)?.state.isTerminal == true } }
            }
            #expect(try await store.job(patient.id)?.state == .succeeded)
            #expect(try await store.job(unlimited.id)?.state == .succeeded)
            let failed = try #require(try await store.job(hasty.id))
            #expect(failed.state == .failed && failed.errors.map(\.message) == ["timed out after 0.1 seconds"], "\(failed.errors)")
        }
    }

    @Test("the trace of the code that enqueued a job is stored in its headers and restored when it runs: the run's span is a child of the enqueuing span, in the same trace",
          arguments: Backend.available)
    func traceJoined(_ backend: Backend) async throws {
        let tracer = InMemoryTracer()
        try await withBackend(backend, traceInstrument: tracer) { store, _ in
            // An HTTP request's span, say, that enqueues a job and a pipeline step.
            let (job, step, request) = try await tracer.withSpan("POST /signup", ofKind: .server) { span in
                let job = try await store.enqueue(SendEmail(to: "ada@example.com", subject: "Welcome"))
                let pipeline = try await store.enqueue(PipelineDefinition(name: "onboard", steps: [PipelineStep("greet", job: NewJob(name: "greet", queue: "t"))]))
                let step = try #require(try await store.pipelineDetails(pipeline.id)?.jobs.first)
                return (job, step, try #require(span.context.inMemorySpanContext))
            }
            #expect(job.headers[InMemoryTracer.traceIDKey] == request.traceID && job.headers[InMemoryTracer.spanIDKey] == request.spanID)
            #expect(step.headers[InMemoryTracer.traceIDKey] == request.traceID)
            // Outside any span, nothing is written.
            let untraced = try await store.insert(NewJob(name: "greet", queue: "t"))
            #expect(untraced.headers.isEmpty)

            var options = testOptions()
            options.tracer = tracer
            try await withScheduler(store, options: options, ["t": { _ in }], setup: [Typed(SendEmail.self) { _, _ in }]) {
                for id in [job.id, step.id, untraced.id] { try await waitForState(store, id, .succeeded) }
            }
            let runs = tracer.finishedSpans.filter { $0.kind == .consumer }
            for id in [job.id, step.id] {
                let run = try #require(runs.first { $0.attributes["messaging.message.id"]?.toSpanAttribute() == .string(id.description) })
                #expect(run.traceID == request.traceID && run.parentSpanID == request.spanID, "run \(run.spanContext), request \(request)")
            }
            let alone = try #require(runs.first { $0.attributes["messaging.message.id"]?.toSpanAttribute() == .string(untraced.id.description) })
            #expect(alone.traceID != request.traceID && alone.parentSpanID == nil)
        }
    }

    @Test("progress: a handler's reports are coalesced (a thousand calls, a few writes, the job's record untouched), seen by another process (`jobstore jobs show`), kept after the job ends, deleted with it",
          arguments: Backend.available)
    func progress(_ backend: Backend) async throws {
        try await withBackend(backend) { store, location in
            let job = try await store.insert(NewJob(name: "copy", queue: "t"))
            let release = Lock(false)
            var options = testOptions()
            options.progressInterval = .milliseconds(50)
            let feed = (store as? JobRepository)?.changes()
            try await withScheduler(store, options: options, ["t": { context in
                for done in 0..<1000 { context.reportProgress(completed: done, of: 2000, "copying file \(done)") }
                context.reportProgress(0.5, "halfway")
                while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                context.reportProgress(completed: 2000, of: 2000)
            }]) {
                try await waitForState(store, job.id, .running)
                let running = try #require(try await store.job(job.id))
                // Another process sees it: the admin tool, reading the store as any program would.
                try await waitUntil("another process to see the job halfway") {
                    let shown = try jobstore("jobs", "show", location, job.id.description, "--json")
                    guard shown.status == 0, let object = try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any] else {
                        throw TestFailure("jobs show failed: \(shown.err)")
                    }
                    guard let progress = object["progress"] as? [String: Any] else { return false }  // none written yet
                    return progress["fraction"] as? Double == 0.5 && progress["message"] as? String == "halfway" && progress["attempt"] as? Int == 1
                }
                let text = try jobstore("jobs", "show", location, job.id.description)
                #expect(text.out.contains("progress     50 % (attempt 1, ") && text.out.contains("): halfway"), "\(text.out)")
                // No report rewrote the job.
                #expect(try await store.job(job.id) == running)
                release.withLock { $0 = true }
                try await waitForState(store, job.id, .succeeded)
                try await waitUntil("the last report to be written") { try await store.progress(of: job.id)?.fraction == 1 }
            }
            #expect(try await store.progress(of: job.id)?.message == nil)
            if let feed {
                // LMDB's change feed carries each write of a report: a few, not a thousand.
                var reports = 0
                for await event in feed {
                    if case .progress(let report) = event, report.id == job.id { reports += 1 }
                    if case .change(let change) = event, change.id == job.id, change.job?.state == .succeeded { break }
                }
                #expect(reports >= 1 && reports < 100, "\(reports) progress writes for 1,002 reports")
            }
            #expect(try await store.delete(job.id))
            #expect(try await store.progress(of: job.id) == nil)
        }
    }
}
