/// The state of a job, and every legal move between states — in this one file.
///
/// ```
///  waiting ──▶ pending ──▶ running ──▶ succeeded
///     │           │  ▲        │  │
///     │           │  └────────┘  └──▶ failed ──┐
///     ▼           ▼   (retry, rescue)           │ (manual retry)
///  cancelled ◀────┴─────── running              ▼
///     └──────────────────────────────────────▶ pending (or waiting: a pipeline
///                                                step whose dependencies have
///                                                not all succeeded)
/// ```
public enum JobState: UInt8, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// A pipeline step blocked on its dependencies.
    case waiting = 0
    /// Claimable once its `runAt` has come.
    case pending = 1
    /// Claimed by a worker, under a lease.
    case running = 2
    /// Finished successfully. Terminal.
    case succeeded = 3
    /// Failed for good (out of attempts, or failed without retry). Terminal until retried by hand.
    case failed = 4
    /// Cancelled. Terminal until retried by hand.
    case cancelled = 5

    /// The lowercase name, as used in the admin tool and JSON.
    public var description: String {
        switch self {
        case .waiting: "waiting"
        case .pending: "pending"
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        }
    }

    /// Every state, in raw-value order: `allCases` built once (the synthesized `allCases`
    /// makes a new array on every call, which the counts' hot path felt).
    package static let every = allCases

    /// Parses a lowercase name.
    public init?(name: String) {
        guard let state = JobState.allCases.first(where: { $0.description == name }) else { return nil }
        self = state
    }

    /// Whether the job is finished (succeeded, failed or cancelled). Finished jobs release their
    /// unique key and may be pruned.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }

    /// The states a job in this state may move to.
    ///
    /// - `waiting` → `pending` (its dependencies succeeded), `cancelled`.
    /// - `pending` → `running` (claimed), `cancelled`.
    /// - `running` → `succeeded`, `failed`, `pending` (a retry at a backoff, or a rescue after
    ///   the lease expired; attempts + 1 happened at the claim), `cancelled`.
    /// - `failed`, `cancelled` → `pending` (retried by hand), `waiting` (a retried pipeline step
    ///   whose dependencies have not all succeeded yet).
    /// - `succeeded` → nothing.
    public var allowedSuccessors: Set<JobState> { Set(JobState.allCases.filter(canMove(to:))) }

    /// Whether moving from this state to `next` is legal: the one table of the moves
    /// (``allowedSuccessors`` lists it). A switch, not a set, so a change's check allocates nothing.
    @inlinable public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.waiting, .pending), (.waiting, .cancelled),
            (.pending, .running), (.pending, .cancelled),
            (.running, .succeeded), (.running, .failed), (.running, .pending), (.running, .cancelled),
            (.failed, .pending), (.failed, .waiting), (.cancelled, .pending), (.cancelled, .waiting):
            true
        default:
            false
        }
    }
}
