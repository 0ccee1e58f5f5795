/// A job as stored: its identity, where it runs, its state and schedule, and its data.
///
/// Plain value; read it with `JobRepository/job(_:)`, change it through the repository.
public struct Job: Sendable, Hashable, Identifiable {
    /// The job's id (time-ordered).
    public var id: JobID
    /// What the job does; handlers are looked up by name. 1…255 bytes of UTF-8.
    public var name: String
    /// The queue it is claimed from. 1…64 bytes of UTF-8, no NUL.
    public var queue: String
    /// The tenant it belongs to, if any. 1…64 bytes of UTF-8.
    public var tenant: String?
    /// Where it is in its life.
    public var state: JobState
    /// 0 (lowest) … 255; higher priorities are claimed first.
    public var priority: UInt8
    /// When it was inserted.
    public var createdAt: Timestamp
    /// When it last changed.
    public var updatedAt: Timestamp
    /// When it may run (claimable from then on while pending).
    public var runAt: Timestamp
    /// How many times it was claimed.
    public var attempts: UInt16
    /// How many claims it may have before a failure is final.
    public var maxAttempts: UInt16
    /// The lease of the worker running it (only while running).
    public var lease: Lease?
    /// The errors of its failed attempts, oldest first; at most ``JobLimits/maxErrors`` are kept.
    public var errors: [JobErrorRecord]
    /// While the job is live (waiting, pending or running), no other live job has this key.
    public var uniqueKey: String?
    /// The pipeline step this job is, if any.
    public var pipeline: PipelineReference?
    /// The longest one run of its handler may take (this job's own, over its handler's
    /// default); `nil`: the handler's. See ``JobLimits/maxTimeout``.
    public var timeout: Duration?
    /// Small named texts carried with the job: the trace context of the code that enqueued it
    /// (``JobTraceContext``), correlation ids, anything a handler or middleware reads. At most
    /// ``JobLimits/maxHeaders``; names 1…``JobLimits/maxHeaderNameBytes`` bytes, values at most
    /// ``JobLimits/maxHeaderValueBytes``.
    public var headers: [String: String]
    /// The job's output once it succeeded, if the handler gave one.
    public var result: [UInt8]?
    // `payload` is declared after `result` so that the initialiser Swift synthesises (labels in
    // declaration order) differs from the public one below, which delegates to it. An
    // initialiser that assigns each field made the optimiser build the job in a temporary,
    // copy it whole (a retain per text and array) and destroy the temporary, on every
    // construction: every read of a record and every insert. The synthesised one builds it in
    // place.
    /// The job's input, opaque bytes.
    public var payload: [UInt8]
}

extension Job {
    /// A job with every field given.
    public init(
        id: JobID, name: String, queue: String, tenant: String? = nil, state: JobState, priority: UInt8,
        createdAt: Timestamp, updatedAt: Timestamp, runAt: Timestamp, attempts: UInt16 = 0, maxAttempts: UInt16,
        lease: Lease? = nil, errors: [JobErrorRecord] = [], uniqueKey: String? = nil,
        pipeline: PipelineReference? = nil, timeout: Duration? = nil, headers: [String: String] = [:], payload: [UInt8],
        result: [UInt8]? = nil
    ) {
        self.init(
            id: id, name: name, queue: queue, tenant: tenant, state: state, priority: priority,
            createdAt: createdAt, updatedAt: updatedAt, runAt: runAt, attempts: attempts, maxAttempts: maxAttempts,
            lease: lease, errors: errors, uniqueKey: uniqueKey, pipeline: pipeline, timeout: timeout, headers: headers,
            result: result, payload: payload)
    }
}

/// What a worker holds while it runs a job: when the lease expires and a token only it knows.
public struct Lease: Sendable, Hashable {
    /// After this, the job may be rescued (moved back to pending, or failed).
    public var expiresAt: Timestamp
    /// The claiming worker's token; completing, failing or extending the job requires it.
    public var owner: OwnerToken

    /// A lease.
    public init(expiresAt: Timestamp, owner: OwnerToken) {
        self.expiresAt = expiresAt
        self.owner = owner
    }
}

/// A random 128-bit token identifying one claim of a job. A worker whose job was rescued and
/// claimed again holds a stale token, so it cannot overwrite the new run (River #1302).
public struct OwnerToken: Hashable, Sendable, CustomStringConvertible {
    /// The token's bits.
    public let high: UInt64, low: UInt64

    /// A token from its bits.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A new random token.
    public static func random() -> OwnerToken {
        var generator = SystemRandomNumberGenerator()
        return OwnerToken(high: generator.next(), low: generator.next())
    }

    /// Hex digits.
    public var description: String {
        String(high, radix: 16).leftPadded(to: 16) + String(low, radix: 16).leftPadded(to: 16)
    }
}

/// One failed attempt: what went wrong, which attempt, when.
public struct JobErrorRecord: Sendable, Hashable, Codable {
    /// The error message (at most ``JobLimits/maxErrorMessageBytes`` bytes are kept).
    public var message: String
    /// The attempt that failed (1 for the first).
    public var attempt: UInt16
    /// When it failed.
    public var at: Timestamp

    /// An error record.
    public init(message: String, attempt: UInt16, at: Timestamp) {
        self.message = message
        self.attempt = attempt
        self.at = at
    }
}

/// The pipeline and step a job belongs to.
public struct PipelineReference: Sendable, Hashable {
    /// The pipeline's id.
    public var pipeline: PipelineID
    /// The step's index in the pipeline.
    public var step: UInt16

    /// A reference.
    public init(pipeline: PipelineID, step: UInt16) {
        self.pipeline = pipeline
        self.step = step
    }
}

/// A job to insert: what the caller decides. The store fills in id (unless given), state
/// (`pending`; a pipeline's steps start `waiting` until their dependencies succeed),
/// timestamps and counters.
public struct NewJob: Sendable, Hashable {
    /// See ``Job/name``.
    public var name: String
    /// See ``Job/queue``.
    public var queue: String
    /// See ``Job/tenant``.
    public var tenant: String?
    /// See ``Job/priority``.
    public var priority: UInt8
    /// When it may run; `nil` means at once.
    public var runAt: Timestamp?
    /// See ``Job/maxAttempts``.
    public var maxAttempts: UInt16
    /// See ``Job/uniqueKey``: inserting a job whose key a live job holds returns that job instead.
    public var uniqueKey: String?
    /// The job's input.
    public var payload: [UInt8]
    /// A chosen id (for imports and reproducible workloads); `nil` makes a fresh time-ordered one.
    public var id: JobID?
    /// A chosen creation time; `nil` means now.
    public var createdAt: Timestamp?
    /// See ``Job/timeout``: this job's limit on one run, over its handler's default.
    public var timeout: Duration?
    /// See ``Job/headers``. The store adds the enqueuing code's trace context to them
    /// (``JobTraceContext``).
    public var headers: [String: String]
    /// The task's trace context when this new job was made, which the store writes into its
    /// headers (``JobTraceContext``). Set it to `CapturedTraceContext(nil)` to carry none.
    public var traceContext: CapturedTraceContext

    /// A new job.
    public init(
        name: String, queue: String = "default", payload: [UInt8] = [], priority: UInt8 = 0,
        runAt: Timestamp? = nil, maxAttempts: UInt16 = 20, tenant: String? = nil, uniqueKey: String? = nil,
        id: JobID? = nil, createdAt: Timestamp? = nil, timeout: Duration? = nil, headers: [String: String] = [:]
    ) {
        self.timeout = timeout
        self.headers = headers
        self.traceContext = CapturedTraceContext()
        self.name = name
        self.queue = queue
        self.payload = payload
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.tenant = tenant
        self.uniqueKey = uniqueKey
        self.id = id
        self.createdAt = createdAt
    }
}

/// The limits of a job's fields, checked on every write.
public enum JobLimits {
    /// Longest name, in UTF-8 bytes.
    public static let maxNameBytes = 255
    /// Longest queue or tenant name, in UTF-8 bytes.
    public static let maxQueueBytes = 64
    /// Longest unique key, in UTF-8 bytes.
    public static let maxUniqueKeyBytes = 255
    /// Largest payload, in bytes. Records above ~2 KB go to LMDB overflow pages; keep payloads small.
    public static let maxPayloadBytes = 1 << 20
    /// Largest result, in bytes.
    public static let maxResultBytes = 64 * 1024
    /// Longest error message kept, in bytes (longer ones are cut).
    public static let maxErrorMessageBytes = 1024
    /// Most error records kept (the oldest are dropped).
    public static let maxErrors = 10
    /// Most headers a job carries.
    public static let maxHeaders = 32
    /// Longest header name, in UTF-8 bytes.
    public static let maxHeaderNameBytes = 64
    /// Longest header value, in UTF-8 bytes.
    public static let maxHeaderValueBytes = 1024
    /// Longest per-job timeout (a year); the shortest is a millisecond.
    public static let maxTimeout = Duration.seconds(365 * 86_400)

    /// Checks a job's fields against ``JobLimits``; throws `.invalidField` naming the field.
    package static func validate(_ job: Job) throws {
        func text(_ value: String, _ field: String, max: Int, noNUL: Bool = false) throws {
            let count = value.utf8.count
            if count == 0 || count > max {
                throw JobStoreError(
                    .invalidField, "\(field) of job \(job.id) is \(count) bytes; it must be 1…\(max) bytes of UTF-8",
                    jobID: job.id)
            }
            if noNUL && value.utf8.contains(0) {
                throw JobStoreError(.invalidField, "\(field) of job \(job.id) contains a NUL byte", jobID: job.id)
            }
        }
        try text(job.name, "the name", max: JobLimits.maxNameBytes)
        try text(job.queue, "the queue", max: JobLimits.maxQueueBytes, noNUL: true)
        if let tenant = job.tenant { try text(tenant, "the tenant", max: JobLimits.maxQueueBytes) }
        if let key = job.uniqueKey { try text(key, "the unique key", max: JobLimits.maxUniqueKeyBytes) }
        if job.payload.count > JobLimits.maxPayloadBytes {
            throw JobStoreError(
                .invalidField, "the payload of job \(job.id) is \(job.payload.count) bytes; the limit is \(JobLimits.maxPayloadBytes)",
                jobID: job.id, hint: "Store large inputs elsewhere and put a reference in the payload")
        }
        if let result = job.result, result.count > JobLimits.maxResultBytes {
            throw JobStoreError(
                .invalidField, "the result of job \(job.id) is \(result.count) bytes; the limit is \(JobLimits.maxResultBytes)",
                jobID: job.id)
        }
        if let timeout = job.timeout, timeout < .milliseconds(1) || timeout > JobLimits.maxTimeout {
            throw JobStoreError(
                .invalidField, "the timeout of job \(job.id) is \(timeout); it must be 1 ms … 365 days", jobID: job.id)
        }
        if job.headers.count > JobLimits.maxHeaders {
            throw JobStoreError(
                .invalidField, "job \(job.id) has \(job.headers.count) headers; the limit is \(JobLimits.maxHeaders)", jobID: job.id)
        }
        for (name, value) in job.headers {
            try text(name, "header name '\(name.prefix(80))'", max: JobLimits.maxHeaderNameBytes, noNUL: true)
            if value.utf8.count > JobLimits.maxHeaderValueBytes {
                throw JobStoreError(
                    .invalidField,
                    "header '\(name)' of job \(job.id) is \(value.utf8.count) bytes; the limit is \(JobLimits.maxHeaderValueBytes)",
                    jobID: job.id)
            }
        }
        if job.state == .waiting && job.pipeline == nil {
            throw JobStoreError(
                .invalidField, "job \(job.id) is waiting but is no pipeline step: nothing would ever release it", jobID: job.id,
                hint: "Only a pipeline's steps wait (for their dependencies); make it pending")
        }
        if job.state == .running && job.lease == nil {
            throw JobStoreError(.invalidField, "running job \(job.id) has no lease", jobID: job.id)
        }
        if job.maxAttempts == 0 {
            throw JobStoreError(
                .invalidField, "job \(job.id) allows 0 attempts; it must allow at least 1", jobID: job.id,
                hint: "Set max_attempts to 1 or more (a NewJob's 0 means 1)")
        }
    }

    /// `text` cut to at most `limit` UTF-8 bytes at a character boundary.
    package static func truncated(_ text: String, to limit: Int) -> Substring.UTF8View {
        let utf8 = text.utf8
        guard utf8.count > limit else { return Substring(text).utf8 }
        var end = utf8.index(utf8.startIndex, offsetBy: limit)
        // Back up to a character boundary so the cut text stays valid UTF-8.
        while end > utf8.startIndex && (utf8[end] & 0xC0) == 0x80 { end = utf8.index(before: end) }
        return Substring(text)[..<end].utf8
    }
}

/// What `JobTransaction/claimBatch(queue:limit:lease:owner:)` claimed, and when to look again.
public struct ClaimBatch: Sendable {
    /// The claimed jobs, now running, in claim order.
    public var jobs: [Job]
    /// When fewer jobs than asked were ready: the earliest runAt of the queue's pending jobs
    /// whose time has not come (`nil` if there is none, or if the claim was full).
    public var nextRunAt: Timestamp?

    /// A claim's result.
    public init(jobs: [Job], nextRunAt: Timestamp?) {
        self.jobs = jobs
        self.nextRunAt = nextRunAt
    }
}
