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

    /// A page.
    public init(jobs: [Job], next: PageCursor?) {
        self.jobs = jobs
        self.next = next
    }
}

/// What a listing selects: a state, a creation-time range, a queue, a tenant (all optional).
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

    /// A filter; `nil` fields select everything.
    public init(state: JobState? = nil, createdFrom: Timestamp? = nil, createdUntil: Timestamp? = nil, queue: String? = nil, tenant: String? = nil) {
        self.state = state
        self.createdFrom = createdFrom
        self.createdUntil = createdUntil
        self.queue = queue
        self.tenant = tenant
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
