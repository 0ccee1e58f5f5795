import Foundation
import JobScheduler
import JobStore
import Locking
import Testing
import TestSupport

/// A typed job: JSON parameters, its own queue and attempts, a unique key from a field.
struct SendEmail: JobDefinition, Equatable {
    static let name = "send-email"
    static let options = JobOptions(queue: "mail", maxAttempts: 5)
    var to: String
    var subject: String
    var attachments: [String] = []
    var dedupe: String?

    var uniqueKey: String? { dedupe.map { "email:\($0)" } }
}

/// A typed job on the binary coder, with nested values.
struct Resize: JobDefinition, Equatable {
    struct Size: Codable, Equatable, Sendable {
        var width: Int
        var height: Int
    }
    static let name = "resize"
    static let options = JobOptions(queue: "images", priority: 7)
    static var coder: any JobPayloadCoder { BinaryPayloadCoder() }
    var image: UUID
    var sizes: [Size]
    var quality: Double
}

/// A typed job that retries fast whatever the scheduler's policy.
struct Flaky: JobDefinition {
    static let name = "flaky"
    static let options = JobOptions(queue: "flaky", maxAttempts: 3, retry: RetryPolicy(base: .milliseconds(50), jitter: 0))
    var label: String
}

@Suite("Conformance: typed jobs (JobDefinition) on LMDB and on PostgreSQL", .serialized)
struct TypedJobsTests {
    @Test("typed jobs: enqueued with their definition's name, options and coded parameters; a registered handler gets them decoded; a batch and an override",
          arguments: Backend.available)
    func typedRoundTrip(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let email = SendEmail(to: "ada@example.com", subject: "Welcome", attachments: ["a.pdf"])
            let job = try await store.enqueue(email)
            #expect(job.name == "send-email" && job.queue == "mail" && job.maxAttempts == 5 && job.state == .pending)
            // JSON, keys sorted: readable wherever a payload is shown.
            #expect(String(decoding: job.payload, as: UTF8.self) == #"{"attachments":["a.pdf"],"subject":"Welcome","to":"ada@example.com"}"#)
            #expect(try job.parameters(as: SendEmail.self) == email)
            let resize = Resize(image: UUID(), sizes: [.init(width: 64, height: 64), .init(width: 512, height: 384)], quality: 0.8)
            let resized = try await store.enqueue([resize, resize])
            #expect(resized.allSatisfy { $0.queue == "images" && $0.priority == 7 } && resized.count == 2)
            #expect(resized.first?.payload.starts(with: Array("bplist".utf8)) == true)
            // An enqueue's own options replace the definition's; runAt, its delay.
            var urgent = SendEmail.options
            urgent.priority = 9
            let later = Timestamp.now.adding(.seconds(3600))
            let overridden = try await store.enqueue(SendEmail(to: "bob@example.com", subject: "Later"), options: urgent, runAt: later)
            #expect(overridden.priority == 9 && overridden.runAt == later && overridden.queue == "mail")

            let got = Recorder()
            try await withScheduler(store, [:], setup: [
                Typed(SendEmail.self) { email, context in got.record(email.to, context.job) },
                Typed(Resize.self) { resize, context in got.record("\(resize.sizes.count) sizes at \(resize.quality)", context.job) },
            ]) {
                try await waitForState(store, job.id, .succeeded)
                for job in resized { try await waitForState(store, job.id, .succeeded) }
            }
            #expect(got.events("ada@example.com").count == 1)
            #expect(got.events("2 sizes at 0.8").count == 2)
            #expect(try await store.job(overridden.id)?.state == .pending)  // an hour away
        }
    }

    @Test("a payload that does not decode fails its job for good at the first attempt, the error naming the type and the field; a wrong kind is refused",
          arguments: Backend.available)
    func undecodablePayload(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            // What an older release might have written: no 'to', and 'subject' a number.
            let missing = try await store.insert(NewJob(name: SendEmail.name, queue: "mail", payload: Array(#"{"subject":"Hi"}"#.utf8), maxAttempts: 5))
            let mistyped = try await store.insert(NewJob(name: SendEmail.name, queue: "mail", payload: Array(#"{"to":"a@b","subject":7}"#.utf8), maxAttempts: 5))
            let garbage = try await store.insert(NewJob(name: SendEmail.name, queue: "mail", payload: [0xff, 0x00], maxAttempts: 5))
            let ran = Recorder()
            try await withScheduler(store, [:], setup: [Typed(SendEmail.self) { email, context in ran.record(email.to, context.job) }]) {
                for job in [missing, mistyped, garbage] { try await waitForState(store, job.id, .failed) }
            }
            #expect(ran.events("a@b").isEmpty)
            for (job, words) in [(missing, "key 'to' not found"), (mistyped, "'subject' is not String"), (garbage, "not valid")] {
                let failed = try #require(try await store.job(job.id))
                #expect(failed.attempts == 1, "failed for good, not retried: \(failed.attempts) attempts")
                let message = failed.errors.last?.message ?? ""
                #expect(message.contains("cannot decode SendEmail from job \(job.id)") && message.contains(words), "\(message)")
            }
            // Read as the wrong type: said, not decoded.
            #expect(throws: JobStoreError.self) { try missing.parameters(as: Resize.self) }
            do {
                _ = try missing.parameters(as: SendEmail.self)
                Issue.record("an undecodable payload decoded")
            } catch let error as JobStoreError {
                #expect(error.code == .undecodablePayload && error.description.contains("key 'to' not found"))
            }
        }
    }

    @Test("a definition's retry policy is its jobs' (the scheduler's own waits an hour): a failed attempt runs again after the definition's backoff",
          arguments: Backend.available)
    func definitionRetryPolicy(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let job = try await store.enqueue(Flaky(label: "first"))
            let runs = Recorder()
            var options = testOptions()
            options.retry = RetryPolicy(base: .seconds(3600), jitter: 0)
            try await withScheduler(store, options: options, [:], setup: [
                Typed(Flaky.self) { _, context in
                    runs.record("run", context.job)
                    if context.attempt == 1 { throw JobStoreError(.invalidArgument, "not yet") }
                },
            ]) {
                try await waitForState(store, job.id, .succeeded)
            }
            let attempts = runs.entries.map(\.job.attempts)
            #expect(attempts == [1, 2], "\(attempts)")
            let failedAt = try #require(runs.entries.first?.at), retriedAt = try #require(runs.entries.last?.at)
            // The definition's 50 ms backoff, not the scheduler's hour (a generous bound: a slow machine).
            #expect(retriedAt.microseconds - failedAt.microseconds < 60_000_000, "retried \(retriedAt) after \(failedAt)")
        }
    }

    @Test("a unique key from the parameters: a second enqueue returns the live job; a typed pipeline runs its typed steps in order",
          arguments: Backend.available)
    func uniqueAndPipelines(_ backend: Backend) async throws {
        try await withBackend(backend) { store in
            let first = try await store.enqueue(SendEmail(to: "ada@example.com", subject: "Receipt", dedupe: "order-42"))
            let second = try await store.enqueue(SendEmail(to: "ada@example.com", subject: "Receipt again", dedupe: "order-42"))
            #expect(second.id == first.id && second.payload == first.payload)

            let pipeline = try await store.enqueue(PipelineDefinition(name: "onboard", steps: [
                try PipelineStep("thumbnail", Resize(image: UUID(), sizes: [.init(width: 8, height: 8)], quality: 1)),
                try PipelineStep("welcome", SendEmail(to: "new@example.com", subject: "Welcome"), dependsOn: ["thumbnail"]),
            ]))
            let order = Recorder()
            try await withScheduler(store, [:], setup: [
                Typed(SendEmail.self) { email, context in order.record(email.subject, context.job) },
                Typed(Resize.self) { _, context in order.record("resize", context.job) },
            ]) {
                try await waitUntil("the pipeline to succeed") { try await store.pipeline(pipeline.id)?.state == .succeeded }
            }
            let names = order.entries.map(\.event)
            #expect(names.firstIndex(of: "resize") ?? 9 < names.firstIndex(of: "Welcome") ?? -1, "\(names)")
        }
    }

    @Test("a step reads its dependencies' results, typed, on every attempt (after a retry too); a step that is no dependency, or a job that is no step, is refused clearly",
          arguments: Backend.available)
    func stepResults(_ backend: Backend) async throws {
        struct Thumb: Codable, Equatable, Sendable { var width: Int; var bytes: Int }
        try await withBackend(backend) { store in
            let lone = try await store.enqueue(SendEmail(to: "lone@example.com", subject: "No pipeline"))
            let pipeline = try await store.enqueue(PipelineDefinition(name: "publish", steps: [
                try PipelineStep("thumbnail", Resize(image: UUID(), sizes: [.init(width: 64, height: 64)], quality: 0.5)),
                PipelineStep("count", job: NewJob(name: "count", queue: "images")),
                try PipelineStep("notify", SendEmail(to: "ops@example.com", subject: "Published"), dependsOn: ["thumbnail", "count"]),
            ]))
            let reads = Recorder()
            let problems = Lock<[String]>([])
            try await withScheduler(store, ["images": { context in context.setResult(Array("3 files".utf8)) }], setup: [
                Typed(Resize.self) { resize, context in
                    try context.setResult(Thumb(width: resize.sizes[0].width, bytes: 1234))
                },
                Typed(SendEmail.self) { email, context in
                    if email.to == "lone@example.com" {
                        do { _ = try await context.result(of: "thumbnail", as: Thumb.self) } catch { problems.withLock { $0.append("\(error)") } }
                        return
                    }
                    let thumb = try await context.result(of: "thumbnail", as: Thumb.self)
                    let all = try await context.dependencyResults()
                    reads.record("attempt \(context.attempt): \(thumb.map { "\($0.width) px, \($0.bytes) B" } ?? "none"), count \(String(decoding: all["count"] ?? [], as: UTF8.self))", context.job)
                    do { _ = try await context.result(of: "notify", as: Thumb.self) } catch { problems.withLock { $0.append("\(error)") } }
                    if context.attempt == 1 { throw JobStoreError(.invalidArgument, "the mail server is down") }  // retried
                },
            ]) {
                try await waitUntil("the pipeline to succeed") { try await store.pipeline(pipeline.id)?.state == .succeeded }
                try await waitForState(store, lone.id, .succeeded)
            }
            #expect(reads.entries.map(\.event) == ["attempt 1: 64 px, 1234 B, count 3 files", "attempt 2: 64 px, 1234 B, count 3 files"])
            let said = problems.withLock { $0 }
            #expect(said.contains { $0.contains("is not a pipeline step") }, "\(said)")
            #expect(said.contains { $0.contains("step 'notify' is not a dependency of step 'notify'") && $0.contains("'thumbnail', 'count'") }, "\(said)")
            let details = try #require(try await store.pipelineDetails(pipeline.id))
            #expect(try details.jobs[0].result(as: Thumb.self) == Thumb(width: 64, bytes: 1234))
        }
    }

    @Test("on LMDB a typed job is enqueued inside a write transaction with the program's own writes: all committed, or none")
    func insideTransaction() throws {
        try withTemporaryDirectory { directory in
            let store = try JobRepository(path: directory.path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try store.write { txn in
                    try txn.enqueue(SendEmail(to: "ada@example.com", subject: "Never"))
                    throw Refused()
                }
            }
            #expect(try store.count(.pending) == 0)
            let (audit, email) = try store.write { txn in
                (try txn.insert(NewJob(name: "audit", payload: Array("order 42".utf8))), try txn.enqueue(SendEmail(to: "ada@example.com", subject: "Order 42")))
            }
            #expect(try store.job(audit.id) != nil && store.job(email.id)?.parameters(as: SendEmail.self).subject == "Order 42")
            let direct = try store.enqueue(SendEmail(to: "bob@example.com", subject: "Sync"))
            #expect(try store.count(.pending) == 3 && direct.queue == "mail")
        }
    }
}
