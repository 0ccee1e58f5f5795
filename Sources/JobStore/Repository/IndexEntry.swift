internal import LMDB

/// What a job contributes to the indexes: every (database, key, value) entry, in one place.
/// Writes and `verify()` both use it, so they cannot disagree.
enum IndexEntry: Hashable {
    case stateCreated([UInt8])
    case created([UInt8])
    case ready([UInt8])
    case readyAny([UInt8])
    case lease([UInt8])
    case finished([UInt8])
    case unique(key: [UInt8], id: [UInt8])

    /// The index a kind of entry lives in, one kind per index.
    enum Kind: CaseIterable {
        case stateCreated, created, ready, readyAny, lease, unique, finished
    }

    /// Every kind, in the order entries are listed (kept once: `allCases` builds an array).
    static let kinds = Kind.allCases

    /// The entry of `kind` with `key`; `id`, the value, only for `.unique`.
    init(_ kind: Kind, key: [UInt8], id: [UInt8] = []) {
        self = switch kind {
        case .stateCreated: .stateCreated(key)
        case .created: .created(key)
        case .ready: .ready(key)
        case .readyAny: .readyAny(key)
        case .lease: .lease(key)
        case .unique: .unique(key: key, id: id)
        case .finished: .finished(key)
        }
    }

    /// The index the entry is in.
    var kind: Kind {
        switch self {
        case .stateCreated: .stateCreated
        case .created: .created
        case .ready: .ready
        case .readyAny: .readyAny
        case .lease: .lease
        case .unique: .unique
        case .finished: .finished
        }
    }

    /// The entry's key.
    var key: [UInt8] {
        switch self {
        case .stateCreated(let key), .created(let key), .ready(let key), .readyAny(let key), .lease(let key), .finished(let key): key
        case .unique(let key, _): key
        }
    }

    /// Writes the key of `job`'s entry in the `kind` index into `buffer` (at least
    /// ``Keys/maxJobKeyBytes`` bytes) and returns its length, or `nil` when the job has no entry
    /// there: the one definition of which index entries a job has. Writes build keys with it on
    /// the stack; `verify()` through ``entry(_:of:)``. A unique-key entry's value is the job's id.
    static func writeKey(_ kind: Kind, of job: Job, into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        switch kind {
        case .stateCreated: Keys.writeStateCreated(job.state, job.createdAt, job.id, into: buffer)
        case .created: Keys.writeCreated(job.createdAt, job.id, into: buffer)
        case .ready: job.state == .pending ? try Keys.writeReady(job.queue, job.priority, job.runAt, job.id, into: buffer) : nil
        case .readyAny: job.state == .pending ? Keys.writeReadyAny(job.priority, job.runAt, job.id, into: buffer) : nil
        case .lease: job.state == .running ? job.lease.map { Keys.writeCreated($0.expiresAt, job.id, into: buffer) } : nil
        case .unique: job.state.isTerminal ? nil : try job.uniqueKey.map { try Keys.writeUnique($0, into: buffer) }
        case .finished: job.state.isTerminal ? Keys.writeStateCreated(job.state, job.updatedAt, job.id, into: buffer) : nil
        }
    }

    /// Calls `body` with the key of `job`'s entry in the `kind` index, built on the stack, or
    /// with `nil` when the job has none there.
    static func withKey<R>(_ kind: Kind, of job: Job, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        try withUnsafeTemporaryAllocation(byteCount: Keys.maxJobKeyBytes, alignment: 8) { buffer in
            try body(try writeKey(kind, of: job, into: buffer).map { UnsafeRawBufferPointer(rebasing: buffer[..<$0]) })
        }
    }

    /// A job's entry in one index, if it has one there (``writeKey(_:of:into:)``, as an entry).
    static func entry(_ kind: Kind, of job: Job) throws -> IndexEntry? {
        try withKey(kind, of: job) { key in
            key.map { IndexEntry(kind, key: Array($0), id: kind == .unique ? Keys.id(job.id) : []) }
        }
    }

    /// Every index entry a job has.
    static func entries(of job: Job) throws -> [IndexEntry] {
        try kinds.compactMap { try entry($0, of: job) }
    }
}
