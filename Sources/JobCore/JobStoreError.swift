/// An error of the job store: what went wrong, which job, and what to do.
///
/// Every throwing call of a store (LMDB's `JobRepository`, PostgreSQL's `PostgresJobStore`) and
/// of the scheduler throws this type (a failure of the storage itself comes as `.storage` or
/// `.backend`, with the storage's own error in ``underlying``). Match a code in a `catch` clause:
///
/// ```swift
/// do {
///     try await store.complete(id, owner: worker)
/// } catch JobStoreError.Code.leaseLost {
///     // rescued and claimed again meanwhile: drop this run's outcome
/// }
/// ```
public struct JobStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure. New codes may be added; `switch` over it with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The code's name, e.g. `leaseLost`.
        public var description: String { name }

        /// A job or pipeline id string is malformed.
        public static let invalidID = Code("invalidID")
        /// No job (or pipeline) has the id.
        public static let notFound = Code("notFound")
        /// The job cannot move from its state to the requested one.
        public static let illegalTransition = Code("illegalTransition")
        /// A field is empty, too long, or holds a forbidden character.
        public static let invalidField = Code("invalidField")
        /// An argument of a call is out of its range (a batch size of 0, say).
        public static let invalidArgument = Code("invalidArgument")
        /// A pipeline definition is not a valid DAG (the message names the steps involved).
        public static let invalidPipeline = Code("invalidPipeline")
        /// A stored record or index entry cannot be decoded.
        public static let corruptRecord = Code("corruptRecord")
        /// A job's payload does not decode as its ``JobDefinition`` type (the message names the
        /// type and the field): its job fails for good.
        public static let undecodablePayload = Code("undecodablePayload")
        /// A record or store was written by a newer format version than this program reads.
        public static let newerFormat = Code("newerFormat")
        /// The LMDB environment is not a job store (or not one this program can open).
        public static let notAJobStore = Code("notAJobStore")
        /// The caller's lease token or attempt does not match the job's: it was rescued or reclaimed.
        public static let leaseLost = Code("leaseLost")
        /// The store is closed.
        public static let closed = Code("closed")
        /// This process has the store open already (through another, still referenced, instance).
        public static let alreadyOpen = Code("alreadyOpen")
        /// Any other LMDB error (``JobStoreError/underlying`` says which).
        public static let storage = Code("storage")
        /// Another backend's database (PostgreSQL) failed or could not be reached; the message
        /// says which and what it said.
        public static let backend = Code("backend")

        /// Lets a `catch` clause match a code: `catch JobStoreError.Code.notFound { … }`.
        public static func ~= (pattern: Code, error: any Error) -> Bool {
            (error as? JobStoreError)?.code == pattern
        }
    }

    /// What kind of failure.
    public let code: Code
    /// What went wrong, in words.
    public let message: String
    /// The job involved, if any.
    public let jobID: JobID?
    /// What to do about it.
    public let hint: String?
    /// The storage's own error behind a `.storage`, `.closed`, `.alreadyOpen` or `.backend`
    /// error (an `LMDBError` on the embedded store), if any.
    public let underlying: (any Error & Sendable)?

    /// An error of `code`: `message` says what went wrong, `hint` what to do. For other
    /// backends of the scheduler, which report the same codes as the embedded store.
    public init(_ code: Code, _ message: String, jobID: JobID? = nil, hint: String? = nil) {
        self.init(code, message, jobID: jobID, hint: hint, underlying: nil)
    }

    /// An error of `code` caused by the storage's `underlying` error.
    public init(_ code: Code, _ message: String, jobID: JobID? = nil, hint: String? = nil, underlying: (any Error & Sendable)?) {
        self.code = code
        self.message = message
        self.jobID = jobID
        self.hint = hint
        self.underlying = underlying
    }

    public var description: String {
        var text = message
        if let jobID, !message.contains(jobID.description) { text += " (job \(jobID))" }
        if let hint, !message.contains(hint) { text += ". \(hint)" }
        return text
    }

    package static func notFound(_ id: JobID) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id)", jobID: id, hint: "Check the id; `jobstore jobs list` shows the jobs")
    }

    /// The error of an id that names neither a job nor a pipeline (an operator's change).
    package static func notFound(jobOrPipeline id: JobID) -> JobStoreError {
        JobStoreError(.notFound, "no job or pipeline \(id)", jobID: id, hint: "Check the id; it may have been deleted or pruned")
    }

    /// Whether this is a refusal of one job's change that left the job as it was — its state
    /// does not allow it (`.illegalTransition`), a pipeline step's job changed alone
    /// (`.invalidArgument`), gone (`.notFound`) — so a change of many jobs goes on past it
    /// (``AdministrableStore/apply(_:toJobs:actor:dryRun:)``).
    public var isRefusal: Bool { code == .illegalTransition || code == .invalidArgument || code == .notFound }

    /// The refusal of a restored live job whose unique key another live job holds.
    package static func uniqueKeyHeld(_ job: Job, _ key: String, by holder: Job) -> JobStoreError {
        JobStoreError(.invalidField, "job \(job.id) has unique key '\(key)', which live job \(holder.id) holds", jobID: job.id)
    }

    /// The refusal of a restored pipeline whose id is taken.
    package static func pipelineExists(_ id: PipelineID) -> JobStoreError {
        JobStoreError(.invalidField, "a pipeline with id \(id) exists", hint: "Import into an empty store, or delete the pipeline first")
    }

    package static func notFound(schedule name: String) -> JobStoreError {
        JobStoreError(
            .notFound, "no schedule '\(name)' is registered",
            hint: "Check the name; `jobstore schedules` lists them (a scheduler registers its periodic jobs when it starts)")
    }

    package static func notFound(_ id: PipelineID) -> JobStoreError {
        JobStoreError(.notFound, "no pipeline \(id)", hint: "Check the id; `jobstore pipelines list` shows the pipelines")
    }

    /// A move of job `id` from `from` to `to` that ``JobState/canMove(to:)`` forbids, with the moves allowed.
    public static func illegalTransition(_ id: JobID, from: JobState, to: JobState) -> JobStoreError {
        JobStoreError(
            .illegalTransition, "job \(id) cannot move from \(from) to \(to)", jobID: id,
            hint: from.allowedSuccessors.isEmpty
                ? "A \(from) job is final"
                : "From \(from) a job may move to: \(from.allowedSuccessors.map(\.description).sorted().joined(separator: ", "))")
    }

    /// A size or count argument below 1.
    package static func requirePositive(_ value: Int, _ name: String) throws {
        guard value >= 1 else {
            throw JobStoreError(.invalidArgument, "\(name) is \(value); it must be at least 1")
        }
    }
}
