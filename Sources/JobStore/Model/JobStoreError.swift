import LMDB

/// An error of the job store: what went wrong, which job, and what to do.
public struct JobStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// A job id string is malformed.
        case invalidID
        /// No job has the id.
        case notFound
        /// The job cannot move from its state to the requested one.
        case illegalTransition
        /// A field is empty, too long, or holds a forbidden character.
        case invalidField
        /// A stored record cannot be decoded.
        case corruptRecord
        /// A record or store was written by a newer format version than this program reads.
        case newerFormat
        /// The LMDB environment is not a job store (or not one this program can open).
        case notAJobStore
        /// The caller's lease token or attempt does not match the job's: it was rescued or reclaimed.
        case leaseLost
        /// An LMDB error (the `underlying` error says which).
        case storage
    }

    /// What kind of failure.
    public let code: Code
    /// What went wrong, in words.
    public let message: String
    /// The job involved, if any.
    public let jobID: JobID?
    /// What to do about it.
    public let hint: String?
    /// The LMDB error behind a `.storage` error.
    public let underlying: LMDBError?

    init(_ code: Code, _ message: String, jobID: JobID? = nil, hint: String? = nil, underlying: LMDBError? = nil) {
        self.code = code
        self.message = message
        self.jobID = jobID
        self.hint = hint
        self.underlying = underlying
    }

    public var description: String {
        var text = message
        if let jobID, !message.contains(jobID.description) { text += " (job \(jobID))" }
        if let hint { text += ". \(hint)" }
        return text
    }

    static func notFound(_ id: JobID) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id)", jobID: id, hint: "Check the id; `jobstore jobs list` shows the jobs")
    }

    static func illegalTransition(_ id: JobID, from: JobState, to: JobState) -> JobStoreError {
        JobStoreError(
            .illegalTransition, "job \(id) cannot move from \(from) to \(to)", jobID: id,
            hint: from.allowedSuccessors.isEmpty
                ? "A \(from) job is final"
                : "From \(from) a job may move to: \(from.allowedSuccessors.map(\.description).sorted().joined(separator: ", "))")
    }
}

extension JobStoreError.Code {
    /// Lets a `catch` clause match a code: `catch JobStoreError.Code.notFound { … }`.
    public static func ~= (pattern: JobStoreError.Code, error: any Error) -> Bool {
        (error as? JobStoreError)?.code == pattern
    }
}
