/// One inconsistency found by `JobRepository/verify()`.
public struct VerificationProblem: Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A record cannot be decoded (or is of a newer format).
        case badRecord
        /// A record lacks one of its index entries.
        case missingIndexEntry
        /// An index entry points to no record, or to a record that does not call for it.
        case strayIndexEntry
        /// A counter differs from a recount of the records.
        case wrongCounter
        /// The store's format version is missing or unreadable.
        case badFormatVersion
        /// A pipeline's record, steps or rolled-up state disagree with its steps' jobs.
        case badPipeline
        /// A job's timeline or a history entry cannot be read, or a timeline disagrees with its job.
        case badEvent
        /// A page of LMDB's data file is damaged (`LMDB/Environment/checkPages()`): the store
        /// cannot be walked safely; restore it from a backup, or `export` what still reads.
        case badPage
    }
    /// What kind of problem.
    public var kind: Kind
    /// The job involved, if one is.
    public var jobID: JobID?
    /// The pipeline involved, if one is.
    public var pipelineID: PipelineID?
    /// What exactly is wrong.
    public var message: String

    /// A problem.
    public init(kind: Kind, jobID: JobID? = nil, pipelineID: PipelineID? = nil, message: String) {
        self.kind = kind
        self.jobID = jobID
        self.pipelineID = pipelineID
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}
