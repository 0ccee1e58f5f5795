package import LMDB
import Instrumentation
import Locking
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Options for opening a store.
public struct JobStoreOptions: Sendable {
    /// The LMDB environment's options (for the package's own tools and tests: map size,
    /// durability, read-only, writer, write map).
    package var environment = EnvironmentOptions()
    /// How durable a commit is when it returns (``Durability/full`` by default).
    public var durability: Durability {
        get { Durability(environment.durability) }
        set { environment.durability = newValue.lmdb }
    }
    /// Whether the store is opened read-only (writes then fail with `.storage`).
    public var readOnly: Bool {
        get { environment.readOnly }
        set { environment.readOnly = newValue }
    }
    /// The map size in bytes (address space, not disk); 0 keeps the store's own (1 GiB for a new
    /// one). It grows by itself when it fills.
    public var mapSize: Int {
        get { environment.mapSize }
        set { environment.mapSize = newValue }
    }
    /// The cache's limits.
    public var cache = CacheOptions()
    /// Events buffered per change-feed subscriber before newer ones are dropped.
    public var feedCapacity = 10_000
    /// The instrument that writes an enqueuing task's trace context into its new jobs' headers
    /// (`JobCore/JobTraceContext`); `nil` (the default): the process's bootstrapped one
    /// (`InstrumentationSystem.instrument`).
    public var traceInstrument: (any Instrument)?
    /// Whether a writable open upgrades a store of an older format (the default). `false` opens
    /// it writable as it is — for a write that is only rehearsed (``JobRepository/rehearse(_:)``,
    /// a dry run), which must change nothing; a store older than format 3 then refuses to open
    /// (opening it writable would create the databases it lacks).
    public var upgradesFormat = true
    /// Where the store tells what an operator needs to know: the map grown (info), reader slots
    /// of dead processes cleared (notice), the cache dropped because another process wrote
    /// (debug), a group-commit batch re-run without a failing request (debug). Silent by
    /// default.
    public var logger: Logger {
        get { environment.logger }
        set { environment.logger = newValue }
    }

    /// Default options: durable commits, a 100,000-job cache.
    public init() {}

    /// Options with the given values.
    public init(
        durability: Durability = .full, readOnly: Bool = false, cache: CacheOptions = CacheOptions(), mapSize: Int = 0,
        logger: Logger? = nil
    ) {
        self.durability = durability
        self.readOnly = readOnly
        self.mapSize = mapSize
        self.cache = cache
        if let logger { self.logger = logger }
    }
}

/// A job store: jobs persisted in one LMDB environment with their indexes, counters, a
/// write-through cache and a change feed.
///
/// ```swift
/// let store = try JobRepository(path: "/var/lib/app/jobs")
/// let job = try await store.insert(NewJob(name: "send-email", queue: "mail", payload: Array("hi".utf8)))
/// let owner = OwnerToken.random()
/// let claimed = try await store.claim(queue: "mail", lease: .seconds(60), owner: owner)
/// for job in claimed { try await store.complete(job.id, owner: owner) }
/// ```
///
/// Every operation comes in a synchronous form (runs on the calling thread) and an async one
/// (runs on the environment's writer thread with group commit; async callers get it by
/// default). Several operations commit together in `write(_:)-(JobTransaction)->T`.
public final class JobRepository: Sendable {
    let environment: Environment
    let db: Databases
    let cache: JobCache
    let feed = ChangeFeed()
    let ids = JobIDGenerator()
    /// Orders the writes of this process, so the cache keeps the newest version (see ``JobCache``).
    let sequence = Atomic<UInt64>(0)
    let options: JobStoreOptions
    /// `options.cache.enabled`, read on every read and write.
    let cacheEnabled: Bool
    /// The counts per state as of a committed transaction, answered again while no commit (of
    /// any process) has followed it: see ``counts()``.
    let countsMemo = Lock<(transaction: Int, counts: [JobState: Int])?>(nil)

    /// Opens the store at `path`, creating it unless the options say read-only.
    ///
    /// - Throws: `.notAJobStore` for an LMDB environment of another program (or, read-only, a
    ///   directory without a store); `.newerFormat` for a store of a newer version;
    ///   `.alreadyOpen` while another instance of this store is open in the process; `.storage`
    ///   (with the `LMDBError`) for other failures of the environment.
    public init(path: String, options: JobStoreOptions = JobStoreOptions()) throws {
        self.options = options
        self.cacheEnabled = options.cache.enabled
        try JobStoreError.requirePositive(options.cache.maxEntries, "CacheOptions.maxEntries")
        try JobStoreError.requirePositive(options.cache.maxBytes, "CacheOptions.maxBytes")
        try JobStoreError.requirePositive(options.feedCapacity, "JobStoreOptions.feedCapacity")
        do {
            var databases = Schema.all
            if access(path + "/data.mdb", F_OK) == 0 {
                // An existing environment: refuse one that is not ours before creating anything in it.
                var probing = EnvironmentOptions(readOnly: true)
                probing.withoutLock = options.environment.withoutLock
                let probe = try Environment(path: path, options: probing)
                let names = try probe.databaseNames()
                probe.close()
                if !names.isEmpty && !names.contains(Schema.meta.name) {
                    throw JobStoreError(
                        .notAJobStore, "\(path) is an LMDB environment of another program (databases: \(names.prefix(5).joined(separator: ", ")))",
                        hint: "Point JobStore at its own directory")
                }
                if !options.environment.readOnly && !options.upgradesFormat {
                    // A rehearsal may not upgrade: it needs the databases writes use (formats 1…3);
                    // without the progress (format 6) or workers (7) database it reads none.
                    let optional = Set((Schema.formatSix + Schema.formatSeven).map(\.name))
                    if let missing = Schema.all.first(where: { !names.contains($0.name) && !optional.contains($0.name) }) {
                        throw JobStoreError(
                            .invalidArgument, "\(path) is a store of an older format (it has no database '\(missing.name)'): opening it writable would upgrade it",
                            hint: "Open it writable once with upgradesFormat (any command of the admin tool that writes), then again")
                    }
                }
                if options.environment.readOnly || !options.upgradesFormat {
                    // Read-only (an older store cannot be upgraded) or a rehearsal: the databases it has.
                    databases = Schema.all.filter { names.contains($0.name) }
                }
            }
            environment = try Environment(path: path, options: options.environment, databases: databases)
        } catch let error as LMDBError {
            throw JobRepository.storeError(error, path: path)
        }
        do {
            db = try Databases(environment)
            try JobRepository.checkFormat(environment, db, readOnly: options.environment.readOnly, upgrade: options.upgradesFormat, path: path)
        } catch {
            environment.close()
            if let error = error as? LMDBError { throw JobRepository.storeError(error, path: path) }
            throw error
        }
        cache = JobCache(options: options.cache, logger: options.logger)
    }

    private static func storeError(_ error: LMDBError, path: String) -> JobStoreError {
        switch error.code {
        case .notAnEnvironment, .notFound, .invalidFile:
            return JobStoreError(
                .notAJobStore, "\(path) is not a job store: \(error.message)", hint: error.hint, underlying: error)
        default:
            return JobStoreError(error)
        }
    }

    /// Checks the stored format version; a writable open creates it (a new store) or upgrades an
    /// older store (the newer databases, already created empty by the open, `idx.finished` filled
    /// for a format-1 store, and the new version, in one transaction).
    private static func checkFormat(_ env: Environment, _ db: Databases, readOnly: Bool, upgrade: Bool, path: String) throws {
        let stored = try env.read { txn in try txn.get(db.meta, MetaKey.formatVersion) }
        let current = withUnsafeBytes(of: Schema.formatVersion.littleEndian) { Array($0) }
        if let stored {
            guard stored.count == 4 else {
                throw JobStoreError(.notAJobStore, "\(path) has a format version of \(stored.count) bytes")
            }
            let version = stored.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            if version == 0 {
                throw JobStoreError(.notAJobStore, "\(path) has format version 0, which no JobStore writes", hint: "Run `jobstore verify`; restore the store from a backup")
            }
            if version > Schema.formatVersion {
                throw JobStoreError(
                    .newerFormat, "\(path) is a store of format version \(version); this program reads versions 1…\(Schema.formatVersion)",
                    hint: "Use a newer version of JobStore")
            }
            if version < Schema.formatVersion && !readOnly && upgrade {
                // The open created the newer databases empty; format 2 also needs idx.finished filled.
                try env.write { txn in
                    if version == 1 { try upgradeFromFormatOne(txn, db) }
                    try txn.put(db.meta, MetaKey.formatVersion, current)
                }
            }
            return
        }
        if readOnly {
            throw JobStoreError(.notAJobStore, "\(path) has no format version: it is not a job store")
        }
        try env.write { txn in
            guard try txn.count(db.jobs) == 0 else {
                throw JobStoreError(.notAJobStore, "\(path) has jobs but no format version")
            }
            try txn.put(db.meta, MetaKey.formatVersion, current)
        }
    }

    /// Format 1 → 2: enters every finished job in `idx.finished` (the pipeline databases start
    /// empty). Idempotent, so an upgrade cut short by a crash is simply done again.
    private static func upgradeFromFormatOne(_ txn: WriteTransaction, _ db: Databases) throws {
        guard let finished = db.finished else { return }
        for state in JobState.allCases where state.isTerminal {
            var keys: [[UInt8]] = []
            try txn.forEach(db.stateCreated, in: .between([state.rawValue], [state.rawValue + 1])) { key, _ in
                let id = try Keys.trailingID(key, index: db.stateCreated.name)
                let updatedAt = try txn.withValue(db.jobs, Keys.id(id)) { bytes in
                    try bytes.map { try RecordFormat.header($0, id: id).updatedAt }
                }
                if let updatedAt { keys.append(Keys.finished(state, updatedAt, id)) }
                return true
            }
            for key in keys { try txn.put(finished, key, ()) }
        }
    }

    /// Closes the store: queued writes commit, change-feed subscriptions end.
    public func close() {
        feed.finish()
        environment.close()
    }

    // MARK: Writing

    /// Runs `body` in one write transaction on this thread; everything it does commits together.
    /// Committed changes reach the cache and the change feed before this returns.
    ///
    /// - Important: `body` may run more than once (see `LMDB/Environment/write(_:)-(WriteTransaction)->R`).
    @discardableResult
    public func write<T>(_ body: (JobTransaction) throws -> T) throws -> T {
        try wrappingErrors { try environment.write { txn in try self.run(body, in: txn) } }
    }

    /// Runs `body` in a write transaction that is always rolled back: it sees and returns what
    /// the changes would do — the same checks, refusals and cascades as `write(_:)-(JobTransaction)->T`
    /// — and nothing reaches the disk, the cache or the change feed. What a dry run is made of.
    ///
    /// It holds the store's write lock while `body` runs (other writers wait), and needs a
    /// store opened writable.
    public func rehearse<T>(_ body: (JobTransaction) throws -> T) throws -> T {
        var outcome: T?
        do {
            try write { txn in
                outcome = try body(txn)
                throw Rehearsal()
            }
        } catch is Rehearsal {}
        guard let outcome else {
            throw JobStoreError(.invalidArgument, "a rehearsed write ended without a result", hint: "This is a bug in JobStore; please report it")
        }
        return outcome
    }

    /// Thrown to roll back a rehearsed write.
    private struct Rehearsal: Error {}

    /// Runs `body` in a write transaction on the writer thread (group commit) and returns once it
    /// is committed. Committed changes then reach the cache and the change feed.
    ///
    /// - Important: Do not wait for another write of this store inside `body` (it runs on the
    ///   writer thread, which would then wait for itself: a deadlock).
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (JobTransaction) throws -> T) async throws -> T {
        try await wrappingErrors { try await environment.write { txn in try self.run(body, in: txn) } }
    }

    /// Runs `body`, writes the counters, and hands the transaction's changes to the cache and
    /// the change feed: they are applied when (and only if) the transaction commits, on the
    /// committing thread, in commit order (``LMDB/WriteTransaction/onCompletion(_:)``).
    private func run<T>(_ body: (JobTransaction) throws -> T, in txn: WriteTransaction) throws -> T {
        let jobs = JobTransaction(txn: txn, db: db, ids: ids, now: .now, instrument: options.traceInstrument)
        let result = try body(jobs)
        try jobs.flushCounters()
        // Taken out of the transaction, so setting the transaction id below changes the one copy
        // in place rather than copying every change (and its job).
        var changes = jobs.changes
        jobs.changes = []
        if !jobs.progressReports.isEmpty {
            let feed = self.feed, reports = jobs.progressReports
            txn.onCompletion { didCommit in if didCommit { feed.publish(reports) } }
        }
        guard !changes.isEmpty else { return result }
        let transaction = try txn.id
        for index in changes.indices { changes[index].transaction = transaction }
        let feed = self.feed
        let committed = changes
        if cacheEnabled {
            let sequence = self.sequence.wrappingAdd(1, ordering: .relaxed).newValue
            let cached = cache.prepare(transaction: transaction, ids: changes.map(\.id))
            let cache = self.cache
            txn.onCompletion { didCommit in
                if didCommit {
                    cache.commit(committed, transaction: transaction, sequence: sequence, cached: cached)
                    feed.publish(committed)
                } else {
                    cache.abandon(transaction: transaction)
                }
            }
        } else {
            txn.onCompletion { didCommit in
                if didCommit { feed.publish(committed) }
            }
        }
        return result
    }

    /// Runs `body`, turning an LMDB error into a ``JobStoreError`` (the store's one error type).
    func wrappingErrors<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw JobStoreError.wrapping(error) }
    }

    /// Runs async `body`, turning an LMDB error into a ``JobStoreError``.
    func wrappingErrors<R>(_ body: () async throws -> R) async throws -> R {
        do { return try await body() } catch { throw JobStoreError.wrapping(error) }
    }

    /// A read transaction of the store, with LMDB errors wrapped.
    func reading<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        try wrappingErrors { try environment.read(body) }
    }

    // MARK: Reading

    /// The job with `id`, or `nil`. Answered from the cache when it holds the job.
    public func job(_ id: JobID) throws -> Job? {
        if cacheEnabled, let cached = cache.get(id, lastTransaction: try lastTransactionID()) {
            return cached
        }
        return try reading { txn in
            let job = try self.job(id, in: txn)
            if cacheEnabled, let job {
                cache.fill(job, transaction: try txn.id, sequence: sequence.load(ordering: .relaxed))
            }
            return job
        }
    }

    /// The jobs with these ids, in the same order (`nil` where there is none), from one snapshot.
    public func jobs(_ ids: [JobID]) throws -> [Job?] {
        try reading { txn in try ids.map { try self.job($0, in: txn) } }
    }

    /// Reads a job without the cache (always from LMDB).
    public func uncachedJob(_ id: JobID) throws -> Job? {
        try reading { txn in try self.job(id, in: txn) }
    }

    /// Lends the job with `id` to `body` in place on LMDB's page (a ``JobRecordView``: fields read
    /// when asked for, nothing copied unless `body` copies it), without the cache; `nil` when
    /// there is no such job.
    public func withJob<R>(_ id: JobID, _ body: (borrowing JobRecordView) throws -> R) throws -> R? {
        try reading { txn in
            try id.withBytes { key in
                try txn.withValue(db.jobs, rawKey: key) { record in try record.map { try body(try JobRecordView($0, id: id)) } }
            }
        }
    }

    func job(_ id: JobID, in txn: Transaction) throws -> Job? { try db.job(id, in: txn) }

    func lastTransactionID() throws -> Int { try wrappingErrors { try environment.lastCommittedTransactionID() } }

    /// The cache's hit, miss and eviction figures.
    public var cacheStatistics: CacheStatistics { cache.statistics }

    /// Committed changes, as they happen. See `JobFeedEvent` for the overflow policy.
    public func changes() -> AsyncStream<JobFeedEvent> { feed.subscribe(capacity: options.feedCapacity) }
}
