internal import LMDB

// The store's own words for what it tells of the LMDB environment beneath it, so its public
// face names no LMDB type (`LMDB` is imported `internal` in every file of this module): a
// program, and the admin tool's backend-neutral commands, need `JobStore` alone.

/// How durable a commit is when it returns.
public enum Durability: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every commit flushes data and metadata to disk before it returns: full ACID.
    case full
    /// The metadata flush is skipped (LMDB's `MDB_NOMETASYNC`). The store stays intact after a
    /// system crash, but the last committed transaction may be undone.
    case noMetaSync
    /// Nothing is flushed at commit (`MDB_NOSYNC`); the OS writes pages back when it likes. A
    /// power loss or OS crash may lose recent commits; a crash of this process alone loses nothing.
    case noSync

    init(_ durability: LMDB.Durability) {
        switch durability {
        case .full: self = .full
        case .noMetaSync: self = .noMetaSync
        case .noSync: self = .noSync
        }
    }

    var lmdb: LMDB.Durability {
        switch self {
        case .full: .full
        case .noMetaSync: .noMetaSync
        case .noSync: .noSync
        }
    }
}

/// The size and use of a store's file and reader table.
public struct EnvironmentInfo: Sendable, Hashable, Codable {
    /// The map size in bytes (address space reserved; grows on demand).
    public var mapSize: Int
    /// The page size in bytes.
    public var pageSize: Int
    /// The last page number in use; `(lastPageNumber + 1) × pageSize` bytes of the file are used.
    public var lastPageNumber: Int
    /// The id of the last committed transaction (any process's): it moves with every commit.
    public var lastTransactionID: Int
    /// The size of the reader table.
    public var maxReaders: Int
    /// The reader slots used so far (idle and pooled slots included); ``JobRepository/readers()``
    /// tells which hold a snapshot now.
    public var readersInUse: Int

    /// Bytes of the file in use.
    public var usedBytes: Int { (lastPageNumber + 1) * pageSize }

    init(_ info: LMDB.EnvironmentInfo) {
        mapSize = info.mapSize
        pageSize = info.pageSize
        lastPageNumber = info.lastPageNumber
        lastTransactionID = info.lastTransactionID
        maxReaders = info.maxReaders
        readersInUse = info.readersInUse
    }
}

/// Entries, depth and pages of one of a store's databases.
public struct DatabaseStatistics: Sendable, Hashable, Codable {
    /// The page size in bytes.
    public var pageSize: Int
    /// The depth of the B-tree.
    public var depth: Int
    /// Internal (branch) pages.
    public var branchPages: Int
    /// Leaf pages.
    public var leafPages: Int
    /// Overflow pages (values too large for a leaf page; watch these).
    public var overflowPages: Int
    /// Entries (every index entry counts).
    public var entries: Int

    /// Bytes in all the database's pages.
    public var bytes: Int { (branchPages + leafPages + overflowPages) * pageSize }

    init(_ statistics: LMDB.DatabaseStatistics) {
        pageSize = statistics.pageSize
        depth = statistics.depth
        branchPages = statistics.branchPages
        leafPages = statistics.leafPages
        overflowPages = statistics.overflowPages
        entries = statistics.entries
    }
}

/// One slot of the store's reader table: a process (or thread) that reads it.
public struct ReaderSlot: Sendable, Hashable, Codable {
    /// The process that holds the slot.
    public var pid: Int
    /// Its thread, as LMDB prints it.
    public var thread: String
    /// The snapshot (transaction id) the slot holds, or `nil` while it is idle.
    public var transaction: Int?

    init(_ slot: LMDB.ReaderSlot) {
        pid = slot.pid
        thread = slot.thread
        transaction = slot.transaction
    }
}

/// How the store's async writes were served: requests, commits, batch sizes (group commit).
public struct WriterStatistics: Sendable, Hashable, Codable {
    /// Async write requests completed (committed or failed).
    public var requests: Int
    /// Transactions committed for them.
    public var commits: Int
    /// The largest number of requests in one commit.
    public var largestBatch: Int
    /// Batches aborted and run again without a request that threw.
    public var reruns: Int

    /// Requests per commit, on average.
    public var averageBatch: Double { commits == 0 ? 0 : Double(requests) / Double(commits) }

    init(_ statistics: LMDB.WriterStatistics) {
        requests = statistics.requests
        commits = statistics.commits
        largestBatch = statistics.largestBatch
        reruns = statistics.reruns
    }
}
