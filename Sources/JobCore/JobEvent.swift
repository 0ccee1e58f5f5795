/// One entry of a job's timeline: what happened to it, when, and the state it left the job in.
///
/// Every change of a job records one, in the same transaction as the change: in the job's own
/// timeline (`JobRepository/events(of:)`, the newest ``JobEvent/timelineLimit`` kept) and in the
/// store's history (`JobRepository/history(after:since:limit:)`, in commit order, kept until
/// pruned). docs/FORMAT.md gives their bytes.
public struct JobEvent: Sendable, Hashable {
    /// What happened.
    public enum Kind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// Inserted (enqueued, imported or restored).
        case inserted = 1
        /// Claimed by a worker: ``JobEvent/owner`` holds the lease until ``JobEvent/until``.
        case claimed = 2
        /// Its worker extended the lease until ``JobEvent/until`` (a heartbeat).
        case leaseExtended = 3
        /// Finished successfully.
        case succeeded = 4
        /// An attempt failed with ``JobEvent/message`` and no attempt is left: failed for good.
        case failed = 5
        /// An attempt failed with ``JobEvent/message``; it runs again at ``JobEvent/until``. Or a
        /// failed or cancelled job put back by hand (retry; its ``JobEvent/actor`` says who).
        case retried = 6
        /// Its lease expired (its worker died or stalled) and it was taken back: pending again,
        /// or failed when no attempt is left.
        case rescued = 7
        /// Cancelled.
        case cancelled = 8
        /// Its worker asked to run it again at ``JobEvent/until``, the attempt not counted.
        case snoozed = 9
        /// Its worker gave it back unfinished (a graceful shutdown), runnable at once.
        case released = 10
        /// Put back in line by hand: a pending or running job made runnable now (requeue).
        case requeued = 11
        /// A pipeline step whose dependencies all succeeded: runnable (waiting → pending), or
        /// waiting again because a dependency was retried.
        case unblocked = 12
        /// Changed otherwise (a field set by a program or an operator).
        case changed = 13
        /// Deleted (by hand, or with its pipeline). Recorded in the history only.
        case deleted = 14
        /// Deleted by retention. Recorded in the history only.
        case pruned = 15
        /// A queue paused (``JobEvent/message``: its name). History only, under no job.
        case queuePaused = 16
        /// A queue resumed (``JobEvent/message``: its name). History only, under no job.
        case queueResumed = 17
        /// A queue's rate limit set (``JobEvent/message``: "queue: N per period"). History only, under no job.
        case queueLimited = 18
        /// A queue's rate limit removed (``JobEvent/message``: its name). History only, under no job.
        case queueUnlimited = 19

        /// Whether the event is about a queue, not a job (recorded under ``JobID/none``).
        public var isQueueEvent: Bool { rawValue >= Kind.queuePaused.rawValue }

        /// The kind's name, as the admin tool prints it (`lease-extended`).
        public var description: String {
            switch self {
            case .inserted: "inserted"
            case .claimed: "claimed"
            case .leaseExtended: "lease-extended"
            case .succeeded: "succeeded"
            case .failed: "failed"
            case .retried: "retried"
            case .rescued: "rescued"
            case .cancelled: "cancelled"
            case .snoozed: "snoozed"
            case .released: "released"
            case .requeued: "requeued"
            case .unblocked: "unblocked"
            case .changed: "changed"
            case .deleted: "deleted"
            case .pruned: "pruned"
            case .queuePaused: "queue-paused"
            case .queueResumed: "queue-resumed"
            case .queueLimited: "queue-limited"
            case .queueUnlimited: "queue-unlimited"
            }
        }

        /// The kind named `name` (its ``description``), or `nil`.
        public init?(name: String) {
            guard let kind = Kind.allCases.first(where: { $0.description == name }) else { return nil }
            self = kind
        }
    }

    /// The most events a job's timeline keeps; older ones are dropped (and counted).
    public static let timelineLimit = 32
    /// The longest error message an event keeps, in UTF-8 bytes (the job's own error list keeps
    /// the whole message).
    public static let maxMessageBytes = 256
    /// The longest actor an event keeps, in UTF-8 bytes.
    public static let maxActorBytes = 100

    /// What happened.
    public var kind: Kind
    /// When (the time of the transaction that made the change).
    public var at: Timestamp
    /// The job's state after the event (for a deletion: before it).
    public var state: JobState
    /// The job's attempts after the event.
    public var attempts: UInt16
    /// For a claim: the worker's lease token.
    public var owner: OwnerToken?
    /// For a claim or a lease extension: the lease's expiry; for a retry or a snooze: when the
    /// job runs next; for any other event that leaves the job pending for later: when it may run.
    public var until: Timestamp?
    /// For a failure, a retry or a rescue: the error (at most ``maxMessageBytes``); for a queue
    /// event, the queue (and its limit).
    public var message: String?
    /// Who made the change, when it was not the program's own code: the admin tool or the
    /// dashboard, e.g. "jobstore tool (ada@host, pid 4711)" (at most ``maxActorBytes``). Set
    /// for a whole transaction with `JobTransaction/actor`. Since store format 5.
    public var actor: String?

    /// An event with the given fields; `message` is cut to ``maxMessageBytes`` on a character boundary.
    public init(
        kind: Kind, at: Timestamp, state: JobState, attempts: UInt16, owner: OwnerToken? = nil, until: Timestamp? = nil,
        message: String? = nil, actor: String? = nil
    ) {
        self.kind = kind
        self.at = at
        self.state = state
        self.attempts = attempts
        self.owner = owner
        self.until = until
        self.message = message.map { JobEvent.truncated($0) }
        self.actor = actor.map { JobEvent.truncated($0, to: JobEvent.maxActorBytes) }
    }

    static func truncated(_ message: String, to limit: Int = maxMessageBytes) -> String {
        guard message.utf8.count > limit else { return message }
        var cut = ""
        for character in message {
            if cut.utf8.count + character.utf8.count > limit { break }
            cut.append(character)
        }
        return cut
    }

    /// The event a change from `old` to `new` records when the operation did not name one: a
    /// claim, a lease extension, an outcome, a cancellation, a pipeline step released.
    package static func kind(from old: Job, to new: Job) -> Kind {
        switch (old.state, new.state) {
        case (.running, .running): old.lease?.owner != new.lease?.owner ? .claimed : old.lease != new.lease ? .leaseExtended : .changed
        case (_, .running): .claimed
        case (_, .succeeded): .succeeded
        case (.running, .failed): .failed
        case (_, .cancelled): .cancelled
        case (.waiting, .pending), (.pending, .waiting): .unblocked
        case (.failed, _), (.cancelled, _): .retried  // put back by hand
        case (.running, .pending): new.errors.count > old.errors.count ? .retried : .released
        default: .changed
        }
    }

    /// The event of `kind` recording `job` as a change (or an insert, or a deletion) left it at
    /// `now`: the lease of a claim, when a retried, snoozed or delayed job runs, the error the
    /// change recorded; made by `actor` (the transaction's), if any.
    package static func recording(_ kind: Kind, _ job: Job, at now: Timestamp, actor: String? = nil) -> JobEvent {
        var event = JobEvent(kind: kind, at: now, state: job.state, attempts: job.attempts, actor: actor)
        switch kind {
        case .claimed:
            event.owner = job.lease?.owner
            event.until = job.lease?.expiresAt
        case .leaseExtended:
            event.until = job.lease?.expiresAt
        case .snoozed:
            event.until = job.runAt
        case .inserted, .unblocked, .requeued, .released, .changed:
            // Pending for later (a delayed job): when it may run.
            if job.state == .pending && job.runAt > now { event.until = job.runAt }
        case .retried, .failed, .rescued, .cancelled:
            if kind == .retried { event.until = job.runAt }
            // The error this change recorded, if it recorded one.
            if let error = job.errors.last, error.at == now { event.message = truncated(error.message) }
        default:
            break
        }
        return event
    }
}

extension JobEvent {
    /// A queue event (paused, resumed, limited, unlimited), recorded under ``JobID/none``:
    /// `description` names the queue (and its limit: ``limited(_:starts:per:)``).
    package static func queue(_ kind: Kind, _ description: String, at now: Timestamp, actor: String?) -> JobEvent {
        JobEvent(kind: kind, at: now, state: .waiting, attempts: 0, message: description, actor: actor)
    }

    /// The description of a queue's new rate limit, as its `queue-limited` event gives it.
    package static func limited(_ queue: String, starts: Int, per period: Duration) -> String {
        "\(queue): \(starts) per \(RateLimit.text(of: period))"
    }

    /// What the event adds to its kind, for people: who claimed the job and until when, when a
    /// retry runs, the error. Empty when it adds nothing.
    public var details: String {
        var parts: [String] = []
        switch kind {
        case .claimed:
            if let owner { parts.append("owner \(owner)") }
            if let until { parts.append("lease until \(until)") }
        case .leaseExtended:
            if let until { parts.append("until \(until)") }
        default:
            if let until { parts.append("runs at \(until)") }
        }
        if let message { parts.append(message) }
        if let actor { parts.append("by \(actor)") }
        return parts.joined(separator: "; ")
    }
}

/// A job's timeline: its newest events, oldest first.
public struct JobTimeline: Sendable, Hashable {
    /// The events kept, oldest first (at most ``JobEvent/timelineLimit``).
    public var events: [JobEvent]
    /// How many older events were dropped to keep the timeline bounded.
    public var dropped: Int

    /// A timeline of these events.
    public init(events: [JobEvent] = [], dropped: Int = 0) {
        self.events = events
        self.dropped = dropped
    }
}

extension JobTimeline {
    /// How the job's last run went, read from its timeline: how long it was ready before it
    /// started, and how long the run took (until now, if it still runs).
    public struct LastRun: Sendable, Hashable {
        /// From when it was ready (made pending, or its delay over) to its last claim; `nil`
        /// when the timeline does not show it becoming ready (dropped, or from before format 3).
        public var queued: Duration?
        /// From its last claim to the end of that run, or to now while it runs.
        public var ran: Duration
        /// Whether that run has ended (the job left running).
        public var ended: Bool
    }

    /// The job's last run, or `nil` if its timeline holds no claim.
    public func lastRun(now: Timestamp = .now) -> LastRun? {
        guard let claim = events.lastIndex(where: { $0.kind == .claimed }) else { return nil }
        let start = events[claim].at
        let end = events[(claim + 1)...].first { $0.state != .running }
        let ready = events[..<claim].last { $0.state == .pending }.map { max($0.at, $0.until ?? $0.at) }
        return LastRun(
            queued: ready.map { start.microseconds > $0.microseconds ? .microseconds(start.microseconds - $0.microseconds) : .zero },
            ran: .microseconds(max(0, (end?.at ?? now).microseconds - start.microseconds)), ended: end != nil)
    }
}

/// Where an event sits in the store's history, printed `<time>.<sequence>`, the form `--after`
/// takes back. On the embedded store: the history's clock (never going back, even if the
/// system clock does) and the event's place among those of the same microsecond, increasing in
/// commit order. On PostgreSQL: the writing transaction's id in `time` (not a time) and the
/// event's number within it, in the order a follower reads without gaps (docs/POSTGRES.md).
/// Positions of different stores do not compare.
public struct HistoryPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The history clock, in microseconds since the epoch (on PostgreSQL: the transaction id).
    public var time: Timestamp
    /// The event's number within `time`.
    public var sequence: UInt32

    /// A position.
    public init(time: Timestamp, sequence: UInt32) {
        self.time = time
        self.sequence = sequence
    }

    /// Parses `<µs>.<sequence>` as ``description`` prints it.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let micros = Int64(parts[0]), let sequence = UInt32(parts[1]) else {
            throw JobStoreError(.invalidArgument, "'\(text)' is not a history position (<microseconds>.<sequence>, as history prints it)")
        }
        self.init(time: Timestamp(microseconds: micros), sequence: sequence)
    }

    public static func < (a: HistoryPosition, b: HistoryPosition) -> Bool {
        (a.time, a.sequence) < (b.time, b.sequence)
    }

    public var description: String { "\(time.microseconds).\(sequence)" }
}

/// One event of the store's history: which job, and what happened to it.
public struct HistoryEntry: Sendable, Hashable {
    /// Where it sits in the history (commit order).
    public var position: HistoryPosition
    /// The job.
    public var jobID: JobID
    /// What happened.
    public var event: JobEvent

    /// The HistoryEntry of these fields.
    package init(position: HistoryPosition, jobID: JobID, event: JobEvent) {
        self.position = position
        self.jobID = jobID
        self.event = event
    }
}

/// A page of the store's history.
public struct HistoryPage: Sendable {
    /// The events, in commit order.
    public var entries: [HistoryEntry]
    /// Where the next page starts (pass it as `after`); `nil` when this page reached the end.
    public var next: HistoryPosition?

    /// The HistoryPage of these fields.
    package init(entries: [HistoryEntry], next: HistoryPosition? = nil) {
        self.entries = entries
        self.next = next
    }
}
