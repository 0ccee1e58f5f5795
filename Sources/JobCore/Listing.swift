/// A position in a listing of jobs by state and creation time, for keyset paging: the next page
/// starts after it, however the store changed meanwhile. Printed as `<createdAt µs>_<id>`.
public struct PageCursor: Hashable, Sendable, CustomStringConvertible {
    /// The creation time of the last job of the page.
    public var createdAt: Timestamp
    /// The id of the last job of the page.
    public var id: JobID

    /// A cursor after the job with these fields.
    public init(createdAt: Timestamp, id: JobID) {
        self.createdAt = createdAt
        self.id = id
    }

    /// Parses the printed form.
    public init(parsing text: String) throws {
        let (createdAt, id) = try PageCursor.parts(of: text)
        self.init(createdAt: createdAt, id: try JobID(parsing: id))
    }

    /// The time and the id text of a printed cursor, `<createdAt µs>_<id>`.
    static func parts(of text: String) throws -> (Timestamp, String) {
        let parts = text.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]) else {
            throw JobStoreError(.invalidField, "'\(text)' is not a page cursor", hint: "Pass the cursor a listing printed, e.g. 1700000000000000_<id>")
        }
        return (Timestamp(microseconds: micros), String(parts[1]))
    }

    public var description: String { "\(createdAt.microseconds)_\(id)" }
}

/// Which end of a listing comes first.
public enum ListOrder: Sendable, Hashable {
    /// Oldest (earliest createdAt) first.
    case oldestFirst
    /// Newest first.
    case newestFirst
}

/// One page of a listing.
public struct JobPage: Sendable {
    /// The jobs of the page, in the listing's order.
    public var jobs: [Job]
    /// Where the next page starts, or `nil` when this page is the last.
    public var next: PageCursor?
    /// How many jobs of the index range the page looked at, when its filter set
    /// ``JobFilter/examineAtMost`` (else `nil`). A page that looked at that many ends there,
    /// however few matched: `next` goes on from the last job looked at.
    public var examined: Int?

    /// A page.
    public init(jobs: [Job], next: PageCursor?, examined: Int? = nil) {
        self.jobs = jobs
        self.next = next
        self.examined = examined
    }
}

/// What a listing selects: a state and a creation-time range (which pick the index range
/// walked), and a queue, tenant, name, payload text or error text (each checked on the jobs of
/// that range). All optional.
///
/// The checks that are not an index range cost a look at each job of the range: give
/// ``examineAtMost`` to bound a page's work (a search page of the dashboard looks at 20,000 jobs
/// at most, then offers to go on).
public struct JobFilter: Sendable, Hashable {
    /// Only jobs in this state.
    public var state: JobState?
    /// Only jobs created at or after this time.
    public var createdFrom: Timestamp?
    /// Only jobs created before this time.
    public var createdUntil: Timestamp?
    /// Only jobs of this queue.
    public var queue: String?
    /// Only jobs of this tenant.
    public var tenant: String?
    /// Only jobs with this name.
    public var name: String?
    /// Only jobs whose payload contains these bytes (the text's UTF-8; case matters): a JSON
    /// payload's `"user":42` or an id in it.
    public var payloadContains: String?
    /// Only jobs with an error (of any attempt) whose message contains this text (case matters).
    public var errorContains: String?
    /// The most jobs of the index range one page looks at (`nil`: no bound). See
    /// ``JobPage/examined``.
    public var examineAtMost: Int?

    /// A filter; `nil` fields select everything.
    public init(
        state: JobState? = nil, createdFrom: Timestamp? = nil, createdUntil: Timestamp? = nil, queue: String? = nil, tenant: String? = nil,
        name: String? = nil, payloadContains: String? = nil, errorContains: String? = nil, examineAtMost: Int? = nil
    ) {
        self.state = state
        self.createdFrom = createdFrom
        self.createdUntil = createdUntil
        self.queue = queue
        self.tenant = tenant
        self.name = name
        self.payloadContains = payloadContains
        self.errorContains = errorContains
        self.examineAtMost = examineAtMost
    }

    /// Whether the filter checks each job of its index range (a queue, tenant, name, payload or
    /// error filter) rather than only picking the range.
    public var checksEachJob: Bool {
        queue != nil || tenant != nil || name != nil || payloadContains != nil || errorContains != nil
    }

    /// Checks the fields a store cannot take: an empty search text, a bound below 1.
    ///
    /// - Throws: `.invalidArgument` naming the field.
    public func validate() throws {
        for (field, text) in [("payloadContains", payloadContains), ("errorContains", errorContains)] where text?.isEmpty == true {
            throw JobStoreError(.invalidArgument, "the filter's \(field) is empty", hint: "Leave it out (nil) to match every job, or give the text to look for")
        }
        if let examineAtMost, examineAtMost < 1 {
            throw JobStoreError(.invalidArgument, "the filter's examineAtMost is \(examineAtMost)", hint: "Give at least 1, or nil for no bound")
        }
    }
}

/// The most common error messages of recently failed jobs: what
/// ``InspectableStore/commonErrors(since:limit:examineAtMost:)`` gives.
public struct ErrorSummary: Sendable, Hashable {
    /// One message and the failed jobs whose last error it is.
    public struct Group: Sendable, Hashable {
        /// The message (a failed job's last error), whole.
        public var message: String
        /// How many of the jobs looked at failed with it.
        public var count: Int
        /// When the newest of them failed.
        public var latest: Timestamp
        /// The newest of them.
        public var latestJob: JobID
        /// A group.
        public init(message: String, count: Int, latest: Timestamp, latestJob: JobID) {
            self.message = message
            self.count = count
            self.latest = latest
            self.latestJob = latestJob
        }
    }

    /// The most common messages, most jobs first (ties: the newest first).
    public var groups: [Group]
    /// How many failed jobs were looked at.
    public var examined: Int
    /// Whether every job that failed in the period was looked at (else the newest
    /// `examined`).
    public var complete: Bool

    /// A summary.
    public init(groups: [Group], examined: Int, complete: Bool) {
        self.groups = groups
        self.examined = examined
        self.complete = complete
    }

    /// Groups `failures` (the newest first: each job's last error message, when it failed and
    /// its id) into the `limit` most common messages. The one grouping rule of both backends.
    public static func grouping(
        _ failures: some Sequence<(message: String, at: Timestamp, id: JobID)>, limit: Int, complete: Bool
    ) -> ErrorSummary {
        var groups: [String: Group] = [:]
        var examined = 0
        for failure in failures {
            examined += 1
            if var group = groups[failure.message] {
                group.count += 1
                if failure.at > group.latest { (group.latest, group.latestJob) = (failure.at, failure.id) }
                groups[failure.message] = group
            } else {
                groups[failure.message] = Group(message: failure.message, count: 1, latest: failure.at, latestJob: failure.id)
            }
        }
        let ranked = groups.values.sorted { ($0.count, $0.latest, $1.message) > ($1.count, $1.latest, $0.message) }
        return ErrorSummary(groups: Array(ranked.prefix(max(0, limit))), examined: examined, complete: complete)
    }
}

/// The fields at fixed offsets of a record, read without decoding the rest.
public struct JobHeader: Sendable, Hashable {
    /// The job's state.
    public var state: JobState
    /// The job's priority.
    public var priority: UInt8
    /// Claims so far.
    public var attempts: UInt16
    /// Creation time.
    public var createdAt: Timestamp
    /// Earliest run time.
    public var runAt: Timestamp

    /// The JobHeader of these fields.
    package init(state: JobState, priority: UInt8, attempts: UInt16, createdAt: Timestamp, runAt: Timestamp) {
        self.state = state
        self.priority = priority
        self.attempts = attempts
        self.createdAt = createdAt
        self.runAt = runAt
    }
}

/// A position in a listing of pipelines, for keyset paging. Printed as `<createdAt µs>_<id>`.
public struct PipelineCursor: Hashable, Sendable, CustomStringConvertible {
    /// The creation time of the last pipeline of the page.
    public var createdAt: Timestamp
    /// The id of the last pipeline of the page.
    public var id: PipelineID

    /// A cursor after the pipeline with these fields.
    public init(createdAt: Timestamp, id: PipelineID) {
        self.createdAt = createdAt
        self.id = id
    }

    /// Parses the printed form.
    public init(parsing text: String) throws {
        let (createdAt, id) = try PageCursor.parts(of: text)
        self.init(createdAt: createdAt, id: try PipelineID(parsing: id))
    }

    public var description: String { "\(createdAt.microseconds)_\(id)" }
}

/// One page of a listing of pipelines.
public struct PipelinePage: Sendable {
    /// The pipelines of the page, in the listing's order.
    public var pipelines: [Pipeline]
    /// Where the next page starts, or `nil` when this page is the last.
    public var next: PipelineCursor?

    /// The PipelinePage of these fields.
    package init(pipelines: [Pipeline], next: PipelineCursor? = nil) {
        self.pipelines = pipelines
        self.next = next
    }
}
