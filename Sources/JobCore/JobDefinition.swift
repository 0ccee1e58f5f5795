import Foundation

/// A kind of job with typed parameters: the value is the job's payload, coded by
/// ``coder`` (JSON unless it says otherwise), and ``name`` is how the scheduler finds its
/// handler. The same definitions work on every backend.
///
/// ```swift
/// struct SendEmail: JobDefinition {
///     static let name = "send-email"
///     static let options = JobOptions(queue: "mail", maxAttempts: 5)
///     var to: String
///     var subject: String
/// }
///
/// let job = try await store.enqueue(SendEmail(to: "ada@example.com", subject: "Welcome"))
/// scheduler.register(SendEmail.self) { email, context in
///     context.logger.info("sending to \(email.to)")
/// }
/// ```
///
/// A payload that does not decode as the type (a field renamed, a job enqueued by an older
/// release) fails its job for good with an error naming the type and the field — never a crash,
/// never endless retries. The untyped API (``NewJob`` with bytes) stays for programs that want it.
public protocol JobDefinition: Codable, Sendable {
    /// The job's name, stored with every job of this kind and used to find its handler: keep it
    /// stable across releases (renaming the type must not orphan stored jobs). 1…255 bytes.
    static var name: String { get }
    /// What a job of this kind gets unless its enqueue says otherwise: queue, priority,
    /// attempts, delay, tenant, its handler's timeout and retry policy. The default: ``JobOptions/init(queue:priority:maxAttempts:delay:tenant:timeout:retry:)``'s.
    static var options: JobOptions { get }
    /// How the parameters become the payload and back: ``JSONPayloadCoder`` by default
    /// (readable in `jobstore jobs show` and the dashboard); ``BinaryPayloadCoder`` is smaller.
    static var coder: any JobPayloadCoder { get }
    /// A unique key derived from the parameters: while a live job (not yet succeeded, failed or
    /// cancelled) holds it, an enqueue returns that job instead of adding one. `nil` (the
    /// default): every enqueue adds a job.
    var uniqueKey: String? { get }
}

extension JobDefinition {
    /// The default options: queue "default", priority 0, 20 attempts, no delay, no tenant.
    public static var options: JobOptions { JobOptions() }
    /// JSON.
    public static var coder: any JobPayloadCoder { JSONPayloadCoder() }
    /// No unique key.
    public var uniqueKey: String? { nil }
}

/// Where and how a job runs: a definition's defaults (``JobDefinition/options``), or what one
/// enqueue asks for instead.
public struct JobOptions: Sendable, Hashable {
    /// The queue its handler is registered on.
    public var queue: String
    /// Higher runs first (0…255).
    public var priority: UInt8
    /// Claims allowed before it fails for good (at least 1).
    public var maxAttempts: UInt16
    /// How long after its enqueue it may first run; `nil`: at once.
    public var delay: Duration?
    /// The tenant it belongs to, if any.
    public var tenant: String?
    /// The longest one run of its handler may take before it is cancelled and the attempt
    /// fails (the scheduler's `JobScheduler`'s `register` default); `nil`: no limit.
    public var timeout: Duration?
    /// When a failed attempt runs again (the scheduler's `register` uses it for this kind's
    /// jobs); `nil`: the scheduler's own (`SchedulerOptions.retry`).
    public var retry: RetryPolicy?

    /// Options; the defaults are those of an untyped ``NewJob``, no timeout, and the
    /// scheduler's retry policy.
    public init(
        queue: String = "default", priority: UInt8 = 0, maxAttempts: UInt16 = 20, delay: Duration? = nil, tenant: String? = nil,
        timeout: Duration? = nil, retry: RetryPolicy? = nil
    ) {
        self.retry = retry
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.delay = delay
        self.tenant = tenant
        self.timeout = timeout
    }
}

/// How a ``JobDefinition``'s parameters become a job's payload and back.
public protocol JobPayloadCoder: Sendable {
    /// The payload of `value`.
    func encode<T: Encodable>(_ value: T) throws -> [UInt8]
    /// The value a payload holds.
    func decode<T: Decodable>(_ type: T.Type, from payload: [UInt8]) throws -> T
}

/// JSON payloads (keys sorted, so equal parameters make equal payloads): readable wherever a
/// payload is shown.
public struct JSONPayloadCoder: JobPayloadCoder {
    /// The JSON coder.
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    public func decode<T: Decodable>(_ type: T.Type, from payload: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(payload))
    }
}

/// Binary property-list payloads: smaller and faster to decode than JSON for numbers and
/// nested values, not readable as text.
public struct BinaryPayloadCoder: JobPayloadCoder {
    /// The binary coder.
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = PropertyListEncoder()
        encoder.outputFormat = .binary
        return Array(try encoder.encode(value))
    }

    public func decode<T: Decodable>(_ type: T.Type, from payload: [UInt8]) throws -> T {
        try PropertyListDecoder().decode(type, from: Data(payload))
    }
}

extension NewJob {
    /// A new job of `job`'s kind: its name, its parameters coded as the payload, its unique key,
    /// and `options` (the definition's own by default); `runAt` overrides the options' delay.
    ///
    /// - Throws: `.invalidField` when the parameters do not encode.
    /// Options given here (not the definition's) store their timeout with the job
    /// (``NewJob/timeout``), over the handler's default.
    public init<J: JobDefinition>(_ job: J, options given: JobOptions? = nil, runAt: Timestamp? = nil) throws {
        let options = given ?? J.options
        let payload: [UInt8]
        do {
            payload = try J.coder.encode(job)
        } catch {
            throw JobStoreError(.invalidField, "cannot encode \(J.self) as the payload of a '\(J.name)' job: \(PayloadError.describe(error))")
        }
        self.init(
            name: J.name, queue: options.queue, payload: payload, priority: options.priority,
            runAt: runAt ?? options.delay.map { Timestamp.now.adding($0) }, maxAttempts: options.maxAttempts,
            tenant: options.tenant, uniqueKey: job.uniqueKey, timeout: given?.timeout)
    }
}

extension Job {
    /// The job's parameters as `type`, decoded from its payload with the type's coder.
    ///
    /// - Throws: `.undecodablePayload`, saying which type, which job and what did not fit
    ///   ("cannot decode SendEmail from job …: key 'to' not found"); `.invalidArgument` when the
    ///   job is of another kind (its name is not the type's).
    public func parameters<J: JobDefinition>(as type: J.Type = J.self) throws -> J {
        guard name == J.name else {
            throw JobStoreError(
                .invalidArgument, "job \(id) is a '\(name)' job, not a '\(J.name)' (\(J.self)) one", jobID: id,
                hint: "Register the handler for the job's own name")
        }
        do {
            return try J.coder.decode(J.self, from: payload)
        } catch {
            throw JobStoreError(
                .undecodablePayload, "cannot decode \(J.self) from job \(id): \(PayloadError.describe(error))", jobID: id,
                hint: "The payload was written by another version of \(J.self); it fails for good (retrying cannot help)")
        }
    }
}

extension Job {
    /// The job's result decoded as `type` with `coder` (JSON by default); `nil` when it has none.
    ///
    /// - Throws: `.undecodablePayload` naming the type, the job and what did not fit.
    public func result<T: Decodable>(as type: T.Type, coder: any JobPayloadCoder = JSONPayloadCoder()) throws -> T? {
        guard let result else { return nil }
        do {
            return try coder.decode(type, from: result)
        } catch {
            throw JobStoreError(.undecodablePayload, "cannot decode \(T.self) from the result of job \(id): \(PayloadError.describe(error))", jobID: id)
        }
    }
}

extension JobPayloadCoder {
    /// `value` coded as `job`'s result, or `.invalidField` saying why not.
    package func encodeResult<T: Encodable>(_ value: T, of job: Job) throws -> [UInt8] {
        do {
            return try encode(value)
        } catch {
            throw JobStoreError(.invalidField, "cannot encode \(T.self) as the result of job \(job.id): \(PayloadError.describe(error))", jobID: job.id)
        }
    }
}

/// What a coding error says, for people: the key or field and what was wrong.
enum PayloadError {
    static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? "the top level" : "'\(path)'"
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            let within = context.codingPath.isEmpty ? "" : " in \(path(context))"
            return "key '\(key.stringValue)' not found\(within)"
        case DecodingError.typeMismatch(let type, let context):
            return "\(path(context)) is not \(type)"
        case DecodingError.valueNotFound(let type, let context):
            return "\(path(context)) is null where \(type) was expected"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? "the payload is not valid for its coder (\(context.debugDescription))" : "\(path(context)): \(context.debugDescription)"
        case EncodingError.invalidValue(_, let context):
            return "\(context.codingPath.isEmpty ? "the value" : "'\(context.codingPath.map(\.stringValue).joined(separator: "."))'"): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

extension JobStoreBackend {
    /// Enqueues a job of `job`'s kind (see ``NewJob/init(_:options:runAt:)``), or returns the
    /// live job holding its unique key.
    @discardableResult
    public func enqueue<J: JobDefinition>(_ job: J, options: JobOptions? = nil, runAt: Timestamp? = nil) async throws -> Job {
        try await insert(NewJob(job, options: options, runAt: runAt))
    }

    /// Enqueues jobs of one kind in one transaction, in order (each as
    /// ``enqueue(_:options:runAt:)-(J,_,_)``).
    @discardableResult
    public func enqueue<J: JobDefinition>(_ jobs: [J], options: JobOptions? = nil, runAt: Timestamp? = nil) async throws -> [Job] {
        try await enqueue(jobs.map { try NewJob($0, options: options, runAt: runAt) })
    }
}

extension PipelineStep {
    /// A step that runs a job of `job`'s kind, after the steps named in `dependsOn`.
    ///
    /// - Throws: `.invalidField` when the parameters do not encode.
    public init<J: JobDefinition>(_ name: String, _ job: J, options: JobOptions? = nil, dependsOn: [String] = []) throws {
        self.init(name, job: try NewJob(job, options: options), dependsOn: dependsOn)
    }
}
