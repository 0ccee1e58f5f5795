import Logging

#if canImport(Glibc)
import Glibc
#endif

/// How durable a commit is when it returns.
public enum Durability: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every commit flushes data and metadata to disk before it returns: full ACID.
    case full
    /// `MDB_NOMETASYNC`: the metadata flush is skipped. The store stays intact after a system
    /// crash, but the last committed transaction may be undone.
    case noMetaSync
    /// `MDB_NOSYNC`: nothing is flushed at commit; the OS writes pages back when it likes.
    /// A power loss or OS crash may lose recent commits (and, on file systems that reorder
    /// writes, damage the store); a crash of this process alone loses nothing.
    case noSync
}

/// How the writer thread isolates one failing request in a group commit.
public enum WriteIsolation: String, Sendable, Hashable, Codable {
    /// Each request runs in its own nested (child) transaction; a request that throws aborts
    /// its child alone. LMDB allocates page lists for every child.
    case nestedTransactions
    /// Requests run directly in the batch's transaction; when one throws, the batch is aborted
    /// and re-run without it. Cheap when requests rarely fail.
    case rerunWithoutFailed
}

/// Options of the writer thread that serves async writes (``Environment/write(_:)-(@Sendable(WriteTransaction)->T)``).
public struct WriterOptions: Sendable, Hashable {
    /// The most requests committed in one transaction. 1 turns group commit off: one
    /// transaction (and one flush) per write. At least 1: an environment opened with less
    /// refuses to open (``LMDBError/Code/invalidArgument``).
    public var maxBatchSize: Int = 1024
    /// How a failing request is rolled back alone.
    public var isolation: WriteIsolation = .rerunWithoutFailed
    /// After a commit, how long at most the writer waits for the callers it just woke to
    /// queue their next request, so that they share the next commit instead of splitting into
    /// two alternating half-batches. The writer stops waiting as soon as as many requests
    /// arrived as the last batch had, and waits at most half the duration of the last commit
    /// and at most this long. `.zero` turns the wait off.
    public var cohortWait: Duration = .microseconds(500)
    /// A commit that takes at least this long (it flushes to disk) makes the writer batch every
    /// queued request and wait for the cohort; below it (no flush, e.g. ``Durability/noSync``) the
    /// writer takes half of the queue per transaction, so callers resubmit while it works instead
    /// of writer and callers waiting on each other in lock-step.
    public var expensiveCommit: Duration = .microseconds(100)

    /// The default options: group commit with up to 1024 requests per transaction.
    public init() {}

    /// Options with the given values.
    public init(
        maxBatchSize: Int = 1024, isolation: WriteIsolation = .rerunWithoutFailed, cohortWait: Duration = .microseconds(500),
        expensiveCommit: Duration = .microseconds(100)
    ) {
        self.maxBatchSize = max(1, maxBatchSize)
        self.isolation = isolation
        self.cohortWait = cohortWait
        self.expensiveCommit = expensiveCommit
    }
}

/// Options for opening an ``Environment``.
public struct EnvironmentOptions: Sendable {
    /// The map size in bytes (address space, not disk). 0 (the default): the size recorded in an
    /// existing environment, or 1 GiB for a new one. A size given explicitly is used (at least what
    /// the data needs) and recorded by the next commit. The map grows by itself when it fills.
    public var mapSize: Int = 0
    /// The most named databases the environment can hold (`mdb_env_set_maxdbs`), 0…32,767.
    public var maxDatabases: Int = 32
    /// The size of the reader table, shared by every process that opens the environment
    /// (1…32,767).
    public var maxReaders: Int = 126
    /// When a commit is on disk.
    public var durability: Durability = .full
    /// Open read-only: never creates anything, and every write is an error.
    public var readOnly: Bool = false
    /// `MDB_NOLOCK`, for a read-only open only: the lock file is neither created nor opened, so
    /// a store in a directory this process may not write (another user's, or a read-only copy)
    /// can be read. LMDB's reader table is then not used: a process writing the store at the same
    /// time does not see this reader and may reuse pages it is reading. Only for a store no one
    /// writes meanwhile, or a short look (the admin tool warns when it falls back to this).
    public var withoutLock: Bool = false
    /// How many reset read transactions to keep for reuse.
    public var readTransactionPoolSize: Int = 32
    /// The file mode of new data and lock files.
    public var fileMode: UInt32 = 0o644
    /// The writer thread's options.
    public var writer: WriterOptions = WriterOptions()
    /// `MDB_WRITEMAP`: write transactions change the mapped file directly instead of writing
    /// pages with `pwrite`. Fewer system calls per commit, but: nested transactions are
    /// impossible (``WriteTransaction/nested(_:)`` and ``WriteIsolation/nestedTransactions`` fail),
    /// a stray pointer write in the process can corrupt the store, the data file is extended to
    /// the map size (sparse), and every process opening the store must use the same setting.
    /// Writes through the map raise no inotify event, so each commit that wrote something also
    /// writes a byte to ``Environment/commitSignalFile`` for watchers in other processes.
    /// Off by default.
    public var writeMap: Bool = false
    /// Where the environment tells what an operator may want to know: the map grown (info),
    /// stale reader slots of dead processes cleared (notice), a group-commit batch re-run without
    /// a failing request (debug). Silent by default.
    public var logger: Logger = Logger(label: "lmdb", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The default options: 1 GiB initial map, full durability, read-write.
    public init() {}

    /// Options with the given values.
    public init(
        mapSize: Int = 0, maxDatabases: Int = 32, maxReaders: Int = 126,
        durability: Durability = .full, readOnly: Bool = false, writer: WriterOptions = WriterOptions(),
        logger: Logger? = nil
    ) {
        self.mapSize = mapSize
        self.maxDatabases = maxDatabases
        self.maxReaders = maxReaders
        self.durability = durability
        self.readOnly = readOnly
        self.writer = writer
        if let logger { self.logger = logger }
    }

    /// Checks every size and count before LMDB sees it (a negative count would trap when
    /// converted for C).
    func validate(path: String) throws {
        func require(_ ok: Bool, _ field: String, _ value: Int, _ range: String) throws {
            guard ok else {
                throw LMDBError(
                    code: .invalidArgument, operation: "open", path: path,
                    message: "EnvironmentOptions.\(field) is \(value); it must be \(range)")
            }
        }
        try require(mapSize >= 0, "mapSize", mapSize, "0 (the environment's own) or a size in bytes")
        try require((0...32_767).contains(maxDatabases), "maxDatabases", maxDatabases, "0…32767")
        try require((1...32_767).contains(maxReaders), "maxReaders", maxReaders, "1…32767")
        try require(readTransactionPoolSize >= 0, "readTransactionPoolSize", readTransactionPoolSize, "0 or more")
        try require(writer.maxBatchSize >= 1, "writer.maxBatchSize", writer.maxBatchSize, "at least 1")
        if withoutLock && !readOnly {
            throw LMDBError(
                code: .invalidArgument, operation: "open", path: path,
                message: "EnvironmentOptions.withoutLock is only for a read-only open",
                hint: "Set readOnly as well; a writer always needs the lock file")
        }
    }
}
