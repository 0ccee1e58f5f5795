/// One committed change to a job, as the cache and the change feed see it.
public struct JobChange: Sendable, Hashable {
    /// What happened.
    public enum Kind: String, Sendable, Hashable {
        /// The job was inserted.
        case inserted
        /// The job changed (its state or any other field).
        case updated
        /// The job was deleted (deleted or pruned).
        case deleted
    }
    /// What happened.
    public var kind: Kind
    /// The job's id.
    public var id: JobID
    /// The job after the change; `nil` for a deletion.
    public var job: Job?
    /// The state before the change; `nil` for an insertion.
    public var previousState: JobState?
    /// The LMDB transaction that committed the change. Changes arrive in commit order: those of
    /// one transaction together and in order, transactions in the order they committed (their
    /// ids increase; another process's commits take ids too, so ids may skip).
    public var transaction: Int = 0

    /// A change with these fields (inlinable: every write makes one per job it changes).
    @inlinable package init(kind: Kind, id: JobID, job: Job? = nil, previousState: JobState? = nil, transaction: Int = 0) {
        self.kind = kind
        self.id = id
        self.job = job
        self.previousState = previousState
        self.transaction = transaction
    }
}

/// What a change-feed subscriber receives.
public enum JobFeedEvent: Sendable, Hashable {
    /// A committed change.
    case change(JobChange)
    /// A running job's handler reported its progress (``JobProgress``; committed, and not a
    /// change of the job's record).
    case progress(ProgressReport)
    /// The subscriber fell behind and `missed` changes were dropped before this point.
    /// Re-read what you track (e.g. the jobs in a state) to catch up.
    case overflow(missed: Int)
}
