import CLMDB
import Logging
import Locking
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An open LMDB environment: one directory holding the named databases of a store.
///
/// ```swift
/// let env = try Environment(path: "/var/lib/app/store", databases: [Schema.users])
/// let users = try env.database(Schema.users)
/// try env.write { txn in try txn.put(users, "ada", Array("Lovelace".utf8)) }      // sync
/// try await env.write { txn in try txn.put(users, "alan", Array("Turing".utf8)) } // async, group commit
/// let name = try env.read { txn in try txn.get(users, "ada") }
/// ```
///
/// ## Threads and transactions
///
/// - Transactions are closures: returning commits, throwing aborts, and the transaction is
///   valid only inside the closure. Closures are synchronous, so a write transaction begins
///   and commits on one OS thread — LMDB requires it (heed issue #339 is what happens otherwise).
/// - The async ``write(_:)-(@Sendable(WriteTransaction)->T)`` hands the closure to one writer
///   thread that commits the requests queued meanwhile together (group commit), so async
///   callers never block Swift's cooperative pool on LMDB's write lock.
/// - Reads never block: they reuse reset read transactions (`MDB_NOTLS` is always on).
/// - A write closure may run more than once: when the map fills, the write is aborted, the
///   map grows and the closure runs again. It must do nothing outside the transaction that
///   cannot be repeated.
///
/// ## LMDB limitations
///
/// - Only one open per directory per process: a second open while the first is still open (not
///   closed and still referenced) is ``LMDBError/Code/alreadyOpen``. An environment whose last
///   reference went away closes itself; an open of its directory waits for that close.
/// - One write transaction at a time, across every process sharing the directory.
/// - Keep read transactions short: a long one stops LMDB from reusing freed pages and the file grows.
/// - Do not use an environment in a child process after `fork()`; open it again there.
public final class Environment: @unchecked Sendable {
    // @unchecked Sendable: `handle` is thread-safe per LMDB's rules as applied here (one write
    // transaction at a time on one thread, read transactions with MDB_NOTLS, map resizes under
    // `resizeLock` exclusively); every other mutable state is behind a Lock (Locking) or is atomic.

    /// The environment's directory, as given.
    public let path: String
    /// The canonical path of the directory (symbolic links resolved).
    public let canonicalPath: String
    /// The options it was opened with.
    public let options: EnvironmentOptions
    /// The largest key (and `duplicateSort` value) LMDB accepts, in bytes (511 for Debian's build).
    public let maxKeySize: Int

    let handle: OpaquePointer
    let id: UInt64
    /// `options.readTransactionPoolSize` and `options.readOnly`, read on every transaction:
    /// kept apart so the hot paths do not touch the options (which hold a `Logger`).
    private let readPoolLimit: Int
    private let isReadOnly: Bool
    let resizeLock = ReadWriteLock()
    /// Held from just before an outermost commit until its completion handlers have run, so the
    /// handlers of this process's commits run in commit order whatever thread committed (see
    /// ``WriteTransaction/onCompletion(_:)``). Taken only while holding LMDB's write lock, and
    /// handlers never wait for anything, so it cannot deadlock.
    let commitOrder = Lock<Void>(())
    let threadState = ThreadState()
    private let isClosed = Atomic<Bool>(false)
    private let readPool = Lock<[TransactionHandle]>([])
    private let databaseHandles: [String: (handle: MDB_dbi, flags: DatabaseFlags)]
    private let writerState = Lock<Writer?>(nil)
    /// With ``EnvironmentOptions/writeMap``, the open ``commitSignalFile`` (written after each
    /// commit that changed something); -1 otherwise.
    private let commitSignalDescriptor: Int32

    /// The file in the environment's directory that a write-mapped environment writes a byte to
    /// after each commit that changed something. Writes through the map raise no inotify event,
    /// so a process watching the directory for commits (`IN_MODIFY` of `data.mdb`) would miss
    /// them; it watches this file too.
    public static let commitSignalFile = "commit-signal"

    private static let nextID = Atomic<UInt64>(1)
    private static let registry = OpenRegistry()

    /// Opens (and, unless read-only, creates) the environment in directory `path` and opens every
    /// declared database in one committed transaction.
    ///
    /// - Throws: ``LMDBError`` with ``LMDBError/Code/alreadyOpen`` if this process has the
    ///   directory open, ``LMDBError/Code/notAnEnvironment`` for a read-only open of a directory
    ///   with no store, ``LMDBError/Code/notFound`` if a read-only open misses a declared
    ///   database, or the LMDB error that stopped the open.
    public init(path: String, options: EnvironmentOptions = EnvironmentOptions(), databases: [any AnyDatabaseDefinition] = []) throws {
        self.path = path
        self.options = options
        self.readPoolLimit = options.readTransactionPoolSize
        self.isReadOnly = options.readOnly
        self.id = Environment.nextID.wrappingAdd(1, ordering: .relaxed).oldValue

        if !options.readOnly {
            try Environment.createDirectory(path)
        }
        guard let resolved = realpath(path, nil) else {
            let code = errno
            throw LMDBError(
                code: options.readOnly ? .notAnEnvironment : .system, returnCode: code, operation: "open",
                path: path, message: String(cString: strerror(code)),
                hint: options.readOnly ? "Check the path; a read-only open never creates a store" : nil)
        }
        canonicalPath = String(cString: resolved)
        free(resolved)
        let canonical = canonicalPath

        var isDirectory = stat()
        guard stat(canonical, &isDirectory) == 0, (isDirectory.st_mode & S_IFMT) == S_IFDIR else {
            throw LMDBError(
                code: .notAnEnvironment, operation: "open", path: path,
                message: "not a directory", hint: "An environment is a directory holding data.mdb and lock.mdb")
        }
        if options.readOnly && access(canonical + "/data.mdb", F_OK) != 0 {
            throw LMDBError(
                code: .notAnEnvironment, operation: "open", path: path,
                message: "no LMDB environment here (data.mdb is missing)")
        }

        try options.validate(path: path)
        let registration = try Environment.registry.claim(canonical, path: path)
        var registered = true
        defer { if registered { Environment.registry.release(canonical) } }

        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create", path: path)
        guard let env else {
            throw LMDBError(code: .system, operation: "mdb_env_create", path: path, message: "no handle returned")
        }
        do {
            // 0: an existing environment keeps the size recorded in it (LMDB reads it when none is
            // set); a new one starts at 1 GiB.
            let exists = access(canonical + "/data.mdb", F_OK) == 0
            let mapSize = options.mapSize > 0 ? options.mapSize : exists ? 0 : 1 << 30
            if mapSize > 0 { try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize", path: path) }
            try check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)), "mdb_env_set_maxdbs", path: path)
            try check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)), "mdb_env_set_maxreaders", path: path)
            var flags = UInt32(MDB_NOTLS)
            switch options.durability {
            case .full: break
            case .noMetaSync: flags |= UInt32(MDB_NOMETASYNC)
            case .noSync: flags |= UInt32(MDB_NOSYNC)
            }
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if options.withoutLock { flags |= UInt32(MDB_NOLOCK) }
            if options.writeMap && !options.readOnly { flags |= UInt32(MDB_WRITEMAP) }
            let rc = mdb_env_open(env, canonical, flags, mode_t(options.fileMode))
            if rc == EACCES || rc == EROFS {
                throw LMDBError(
                    code: .permissionDenied, returnCode: rc, operation: "mdb_env_open", path: path,
                    message: "\(String(cString: strerror(rc))): this process may not write \(Environment.unwritable(canonical, readOnly: options.readOnly))",
                    hint: options.readOnly
                        ? "Even a reader writes LMDB's lock file: run as the store's owner, or open without the lock (EnvironmentOptions.withoutLock) if nothing writes the store meanwhile"
                        : "Run as the store's owner, or give this user write access to the directory and its two files")
            }
            try check(rc, "mdb_env_open", path: path)
        } catch {
            // lmdb.h: if mdb_env_open fails, mdb_env_close must be called to discard the handle.
            mdb_env_close(env)
            throw error
        }
        do {
            try Environment.checkNotTruncated(env, canonical: canonical, path: path)
        } catch {
            mdb_env_close(env)
            throw error
        }
        handle = env
        maxKeySize = Int(mdb_env_get_maxkeysize(env))
        _ = try? Environment.clearDeadReaders(env, options: options, path: path)  // left by crashed processes

        do {
            databaseHandles = try Environment.openDatabases(databases, env: env, readOnly: options.readOnly, path: path)
        } catch {
            mdb_env_close(env)
            throw error
        }
        commitSignalDescriptor = options.writeMap && !options.readOnly
            ? Environment.openCommitSignal(canonical, mode: options.fileMode, logger: options.logger) : -1
        registered = false  // from here on, close() unregisters
        Environment.registry.opened(registration, self)
    }

    deinit {
        closeNow()
    }

    /// Opens (creating) the commit signal file; -1, logged, if it cannot: commits then raise no
    /// event for other processes' watchers, which is what a write-mapped store did before.
    private static func openCommitSignal(_ directory: String, mode: UInt32, logger: Logger) -> Int32 {
        let descriptor = open(directory + "/" + commitSignalFile, O_WRONLY | O_CREAT | O_CLOEXEC, mode_t(mode))
        if descriptor < 0 {
            let reason = String(cString: strerror(errno))
            logger.warning(
                "cannot open the commit signal file: other processes watching this store will not see its commits",
                metadata: ["path": "\(directory)/\(commitSignalFile)", "error": "\(reason)"])
        }
        return descriptor
    }

    /// After a commit that changed something: with ``EnvironmentOptions/writeMap``, writes a byte
    /// to ``commitSignalFile`` (the `IN_MODIFY` a watcher waits for); nothing otherwise (LMDB's
    /// own `pwrite`s to `data.mdb` raise it).
    func signalCommit() {
        guard commitSignalDescriptor >= 0 else { return }
        var byte: UInt8 = 1
        _ = pwrite(commitSignalDescriptor, &byte, 1, 0)  // best effort: a missed signal delays a watcher, loses nothing
    }

    /// Which of the environment's files (or its directory) this process may not write, and who
    /// owns it: for the error of an open that was refused.
    static func unwritable(_ directory: String, readOnly: Bool) -> String {
        func owner(_ path: String) -> String {
            var info = stat()
            guard stat(path, &info) == 0 else { return "" }
            if let entry = getpwuid(info.st_uid), let name = entry.pointee.pw_name { return " (owned by \(String(cString: name)))" }
            return " (owned by uid \(info.st_uid))"
        }
        let files = (readOnly ? ["lock.mdb"] : ["lock.mdb", "data.mdb"]).map { directory + "/" + $0 }
        for file in files where access(file, F_OK) == 0 && access(file, W_OK) != 0 { return file + owner(file) }
        if access(directory, W_OK) != 0 { return "the directory " + directory + owner(directory) }
        return "the files of " + directory + " (a read-only file system?)"
    }

    private static func createDirectory(_ path: String) throws {
        var components: [Substring] = []
        var current = path
        while !current.isEmpty && access(current, F_OK) != 0 {
            components.append(Substring(current))
            guard let slash = current.lastIndex(of: "/") else { break }
            current = String(current[..<slash])
        }
        for directory in components.reversed() where mkdir(String(directory), 0o755) != 0 && errno != EEXIST {
            let code = errno
            throw LMDBError(
                code: .system, returnCode: code, operation: "mkdir", path: String(directory),
                message: String(cString: strerror(code)))
        }
    }

    /// Refuses a data file shorter than its last committed page: LMDB maps the file, and reading
    /// a page past its end would kill the process (SIGBUS) instead of failing.
    private static func checkNotTruncated(_ env: OpaquePointer, canonical: String, path: String) throws {
        var info = MDB_envinfo()
        var stats = MDB_stat()
        guard mdb_env_info(env, &info) == 0, mdb_env_stat(env, &stats) == 0 else { return }
        var file = stat()
        guard stat(canonical + "/data.mdb", &file) == 0 else { return }
        let needed = (info.me_last_pgno + 1) * Int(stats.ms_psize)
        if Int(file.st_size) < needed {
            throw LMDBError(
                code: .corrupted, operation: "open", path: path,
                message: "data.mdb is \(file.st_size) bytes, but its last committed page ends at byte \(needed): the file was truncated",
                hint: "Restore the store from a backup (`jobstore backup` makes consistent copies of a live store)")
        }
    }

    /// Opens every declared database in one transaction and commits it, so the handles are
    /// visible to every later transaction (lmdb.h `mdb_dbi_open`). A write transaction on a
    /// tiny map may fill it; the open is then retried on a grown map.
    private static func openDatabases(
        _ definitions: [any AnyDatabaseDefinition], env: OpaquePointer, readOnly: Bool, path: String
    ) throws -> [String: (handle: MDB_dbi, flags: DatabaseFlags)] {
        var seen = Set<String>()
        for definition in definitions {
            let dupOnly: DatabaseFlags = [.duplicateFixed, .integerDuplicates, .reverseDuplicates]
            if !definition.flags.isDisjoint(with: dupOnly) && !definition.flags.contains(.duplicateSort) {
                throw LMDBError(
                    code: .invalidArgument, operation: "open", database: definition.name, path: path,
                    message: "flags \(definition.flags.names) need duplicateSort")
            }
            if definition.name.isEmpty || !seen.insert(definition.name).inserted {
                throw LMDBError(
                    code: .invalidArgument, operation: "open", database: definition.name, path: path,
                    message: definition.name.isEmpty ? "a database name is empty" : "the database is declared twice")
            }
        }
        var mapSize = 0
        while true {
            var txn: OpaquePointer?
            var rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            if rc == MDB_MAP_RESIZED {
                try check(mdb_env_set_mapsize(env, 0), "mdb_env_set_mapsize", path: path)
                continue
            }
            try check(rc, "mdb_txn_begin", path: path)
            var result: [String: (handle: MDB_dbi, flags: DatabaseFlags)] = [:]
            for definition in definitions {
                var dbi = MDB_dbi()
                let flags = definition.flags.rawValue | (readOnly ? 0 : UInt32(MDB_CREATE))
                rc = mdb_dbi_open(txn, definition.name, flags, &dbi)
                if rc != 0 { break }
                result[definition.name] = (dbi, definition.flags)
            }
            if rc == 0 {
                rc = mdb_txn_commit(txn)
                if rc == 0 { return result }
            } else {
                mdb_txn_abort(txn)
            }
            if rc == MDB_MAP_FULL {
                var info = MDB_envinfo()
                mdb_env_info(env, &info)
                mapSize = max(mapSize, info.me_mapsize) * 2
                try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize", path: path)
                continue
            }
            var error = LMDBError(returnCode: rc, operation: "mdb_dbi_open", path: path)
            if rc == MDB_NOTFOUND {
                error = LMDBError(
                    code: .notFound, returnCode: rc, operation: "mdb_dbi_open", path: path,
                    message: "a declared database is missing from this environment",
                    hint: "This environment was not created by this program, or by an older version of it")
            }
            throw error
        }
    }

    // MARK: Databases

    /// The open handle of a database declared when the environment was opened.
    ///
    /// - Throws: ``LMDBError/Code/undeclaredDatabase`` if it was not declared, or
    ///   ``LMDBError/Code/incompatible`` if it was declared with other flags.
    public func database<Key, Value>(_ definition: DatabaseDefinition<Key, Value>) throws -> Database<Key, Value> {
        guard let entry = databaseHandles[definition.name] else {
            throw LMDBError(
                code: .undeclaredDatabase, operation: "database", database: definition.name, path: path,
                message: "the database was not declared when the environment was opened")
        }
        guard entry.flags == definition.flags else {
            throw LMDBError(
                code: .incompatible, operation: "database", database: definition.name, path: path,
                message: "declared with flags \(entry.flags.names), requested with \(definition.flags.names)")
        }
        return Database(name: definition.name, flags: definition.flags, handle: entry.handle, environmentID: id)
    }

    /// The names of every named database in the environment (the keys of LMDB's main database),
    /// declared or not.
    public func databaseNames() throws -> [String] {
        try read { txn in
            var names: [String] = []
            var dbi = MDB_dbi()
            try check(mdb_dbi_open(txn.handle, nil, 0, &dbi), "mdb_dbi_open", path: path)
            let main = Database<StringCodec, BytesCodec>(name: "(main)", flags: [], handle: dbi, environmentID: id)
            try txn.forEach(main) { key, _ in
                names.append(String(decoding: key, as: UTF8.self))
                return true
            }
            return names
        }
    }

    // MARK: Reading

    /// Runs `body` in a read-only transaction: a consistent snapshot of the last commit.
    ///
    /// The transaction is valid only inside `body`. Reads never block on writers. Read
    /// transactions are pooled and renewed, so this costs no allocation in LMDB after warm-up.
    ///
    /// - Important: Keep `body` short. A read transaction that stays open stops LMDB from reusing
    ///   pages freed by later writes, and the file grows.
    @discardableResult
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        let txn = try beginRead()
        defer {
            endRead(txn)
            leaveTransactionScope()
        }
        return try body(txn)
    }

    /// Enters a transaction scope and begins (or renews a pooled) read transaction. When another
    /// process grew the map, leaves the scope, adopts the new size and tries again.
    private func beginRead() throws -> ReadTransaction {
        while true {
            try enterTransactionScope()
            var txn: OpaquePointer?
            var rc: Int32
            if let pooled = readPool.withLock({ $0.popLast() }) {
                txn = pooled.pointer
                rc = mdb_txn_renew(pooled.pointer)
                if rc != 0 { mdb_txn_abort(pooled.pointer); txn = nil }
            } else {
                rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
            }
            if rc == 0, let txn {
                return ReadTransaction(environment: self, handle: txn)
            }
            leaveTransactionScope()
            if rc == MDB_MAP_RESIZED {
                try adoptMapSizeOfOtherProcess()
                continue
            }
            try check(rc, "mdb_txn_begin(read)", path: path)
            throw LMDBError(code: .system, operation: "mdb_txn_begin(read)", path: path, message: "no handle returned")
        }
    }

    private func endRead(_ txn: ReadTransaction) {
        guard let pointer = txn.end() else { return }
        mdb_txn_reset(pointer)
        let kept = readPool.withLock { pool in
            guard pool.count < readPoolLimit else { return false }
            pool.append(TransactionHandle(pointer: pointer))
            return true
        }
        if !kept { mdb_txn_abort(pointer) }
    }

    // MARK: Writing

    /// Runs `body` in a write transaction on the calling thread and commits it when `body` returns.
    ///
    /// Blocks while another write transaction (of this or another process) is active. From
    /// async code prefer the async ``write(_:)-(@Sendable(WriteTransaction)->T)``, which does
    /// not block the cooperative thread pool.
    ///
    /// - Important: `body` may run more than once (the map grew and the write was re-run).
    /// - Throws: what `body` throws (nothing is written), ``LMDBError/Code/reentrantWrite`` if
    ///   this thread is already inside a write transaction, ``LMDBError/Code/readOnly``.
    @discardableResult
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        try withWriteAttempts { txn in
            let result = try body(txn)
            try txn.commit()
            return result
        }
    }

    /// The retry loop every write goes through, sync or from the writer thread: take the
    /// resize lock shared, begin a write transaction, run `attempt` (which must commit), and on
    /// a full or resized map abort, grow the map with no transaction active, and run it again.
    func withWriteAttempts<R>(_ attempt: (WriteTransaction) throws -> R) throws -> R {
        if isReadOnly {
            throw LMDBError(code: .readOnly, operation: "write", path: path, message: "the environment is open read-only")
        }
        if threadState.isWriting {
            throw LMDBError(
                code: .reentrantWrite, operation: "write", path: path,
                message: "this thread is already inside a write transaction; a second one would deadlock")
        }
        while true {
            try enterTransactionScope()
            threadState.isWriting = true
            var begun: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, 0, &begun)
            guard rc == 0, let pointer = begun else {
                threadState.isWriting = false
                leaveTransactionScope()
                if rc == MDB_MAP_RESIZED {
                    try adoptMapSizeOfOtherProcess()
                    continue
                }
                try check(rc, "mdb_txn_begin(write)", path: path)
                throw LMDBError(code: .system, operation: "mdb_txn_begin(write)", path: path, message: "no handle returned")
            }
            let txn = WriteTransaction(environment: self, handle: pointer)
            let mapSizeBefore = currentMapSize()
            do {
                let result = try attempt(txn)
                txn.abortIfActive()
                threadState.isWriting = false
                leaveTransactionScope()
                return result
            } catch {
                let mapFilled = txn.sawMapFull || (error as? LMDBError)?.code == .mapFull
                let mapResized = (error as? LMDBError)?.code == .mapResized
                txn.abortIfActive()
                threadState.isWriting = false
                leaveTransactionScope()
                if mapFilled {
                    try growMap(from: mapSizeBefore)
                    continue
                }
                if mapResized {
                    try adoptMapSizeOfOtherProcess()
                    continue
                }
                throw error
            }
        }
    }

    /// The writer thread, started on the first async write.
    func writer() throws -> Writer {
        if isClosed.load(ordering: .acquiring) {
            throw LMDBError(code: .closed, operation: "write", path: path, message: "the environment is closed")
        }
        return writerState.withLock { writer in
            if let writer { return writer }
            let created = Writer(environment: self, options: options.writer)
            writer = created
            return created
        }
    }

    /// Writer statistics: how many requests and commits the async writer served.
    public var writerStatistics: WriterStatistics {
        writerState.withLock { $0?.statistics } ?? WriterStatistics()
    }

    // MARK: Transaction scopes and map size

    /// Enters a transaction scope on this thread: takes the resize lock shared at depth 0.
    func enterTransactionScope() throws {
        if isClosed.load(ordering: .acquiring) {
            throw LMDBError(code: .closed, operation: "transaction", path: path, message: "the environment is closed")
        }
        let depth = threadState.depth
        if depth == 0 {
            resizeLock.lockShared()
            if isClosed.load(ordering: .acquiring) {
                resizeLock.unlock()
                throw LMDBError(code: .closed, operation: "transaction", path: path, message: "the environment is closed")
            }
        }
        threadState.depth = depth + 1
    }

    func leaveTransactionScope() {
        let depth = threadState.depth - 1
        threadState.depth = depth
        if depth == 0 { resizeLock.unlock() }
    }

    func currentMapSize() -> Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Doubles the map unless someone already grew it past `observed`. Needs no transaction
    /// active in the process, so it takes the resize lock exclusively; a thread that is itself
    /// inside a transaction scope cannot wait for that and gets an error instead.
    func growMap(from observed: Int) throws {
        try withExclusiveResizeLock(operation: "grow the map") {
            if currentMapSize() > observed { return }
            try check(mdb_env_set_mapsize(handle, observed * 2), "mdb_env_set_mapsize", path: path)
            options.logger.info(
                "map grown", metadata: ["path": "\(path)", "from": "\(observed)", "to": "\(observed * 2)"])
        }
    }

    /// Another process grew the map: adopt its size (`mdb_env_set_mapsize(env, 0)`).
    func adoptMapSizeOfOtherProcess() throws {
        try withExclusiveResizeLock(operation: "adopt the map size") {
            try check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize", path: path)
            options.logger.debug("adopted the map size another process set", metadata: ["path": "\(path)", "size": "\(currentMapSize())"])
        }
    }

    private func withExclusiveResizeLock(operation: String, _ body: () throws -> Void) throws {
        guard threadState.depth == 0 else {
            throw LMDBError(
                code: .mapFull, operation: operation, path: path,
                message: "the map must be resized, but this thread is inside another transaction of the environment",
                hint: "Do not start a write inside a read closure; finish the read first")
        }
        resizeLock.lockExclusive()
        defer { resizeLock.unlock() }
        if isClosed.load(ordering: .acquiring) {
            throw LMDBError(code: .closed, operation: operation, path: path, message: "the environment is closed")
        }
        try body()
    }

    // MARK: Information and maintenance

    /// The environment's information (`mdb_env_info` and `mdb_env_stat`).
    public func info() throws -> EnvironmentInfo {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        try withOpenHandle { handle in
            try check(mdb_env_info(handle, &info), "mdb_env_info", path: path)
            try check(mdb_env_stat(handle, &stat), "mdb_env_stat", path: path)
        }
        return EnvironmentInfo(
            mapSize: info.me_mapsize, pageSize: Int(stat.ms_psize), lastPageNumber: info.me_last_pgno,
            lastTransactionID: info.me_last_txnid, maxReaders: Int(info.me_maxreaders),
            readersInUse: Int(info.me_numreaders))
    }

    /// The id of the last transaction committed by any process (`mdb_env_info`), cheaply: no
    /// transaction is begun. A change means some process committed.
    public func lastCommittedTransactionID() throws -> Int {
        var info = MDB_envinfo()
        try withOpenHandle { handle in try check(mdb_env_info(handle, &info), "mdb_env_info", path: path) }
        return info.me_last_txnid
    }

    /// Statistics of one database, from a short read transaction.
    public func statistics<Key, Value>(of database: Database<Key, Value>) throws -> DatabaseStatistics {
        try read { try $0.statistics(database) }
    }

    /// The reader table as LMDB prints it (`mdb_reader_list`): pid, thread and transaction of each slot.
    public func readerTable() throws -> String {
        final class Lines { var text = "" }
        let lines = Lines()
        try withOpenHandle { handle in
            let context = Unmanaged.passUnretained(lines).toOpaque()
            let rc = mdb_reader_list(handle, { message, context in
                guard let message, let context else { return 0 }
                Unmanaged<Lines>.fromOpaque(context).takeUnretainedValue().text += String(cString: message)
                return 0
            }, context)
            if rc < 0 { try check(rc, "mdb_reader_list", path: path) }
        }
        return lines.text
    }

    /// The reader table's slots (parsed from ``readerTable()``): each slot's process, thread, and
    /// the snapshot it holds (`nil` while it is idle, between read transactions).
    public func readers() throws -> [ReaderSlot] {
        // LMDB's text: a header line, then "pid thread txnid" per slot ("-" when idle).
        try readerTable().split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let pid = Int(fields[0]) else { return nil }
            return ReaderSlot(pid: pid, thread: String(fields[1]), transaction: Int(fields[2]))
        }
    }

    /// The pages on LMDB's free list (`mdb_stat -f`'s "Free pages"): freed by past commits,
    /// reused by later ones before the file grows. Read from the free-list database in one
    /// read transaction.
    public func freePages() throws -> Int {
        try read { txn in
            var cursor: OpaquePointer?
            try check(mdb_cursor_open(try txn.handle, 0, &cursor), "mdb_cursor_open", database: "free list", path: path)
            defer { mdb_cursor_close(cursor) }
            var key = MDB_val(), value = MDB_val()
            var total = 0
            var rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
            while rc == MDB_SUCCESS {
                // Each value is a list of page numbers whose first word is their count.
                if value.mv_size >= MemoryLayout<Int>.size, let data = value.mv_data {
                    total += data.loadUnaligned(as: Int.self)
                }
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get", database: "free list", path: path) }
            return total
        }
    }

    /// Clears reader slots left by processes that died (`mdb_reader_check`); returns how many.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        try withOpenHandle { handle in try Environment.clearDeadReaders(handle, options: options, path: path) }
    }

    /// `mdb_reader_check` on `env`, logging what it cleared.
    private static func clearDeadReaders(_ env: OpaquePointer, options: EnvironmentOptions, path: String) throws -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(env, &dead), "mdb_reader_check", path: path)
        if dead > 0 {
            options.logger.notice("cleared reader slots left by dead processes", metadata: ["path": "\(path)", "slots": "\(dead)"])
        }
        return Int(dead)
    }

    /// Writes a consistent copy of the environment into `destination`, an existing empty
    /// directory (`mdb_env_copy2`); with `compact`, free pages are left out and pages renumbered.
    ///
    /// Safe while other threads and processes write; the copy holds a read transaction for its
    /// whole duration, so the source file may grow meanwhile.
    public func copy(to destination: String, compact: Bool = false) throws {
        try withOpenHandle { handle in
            try check(
                mdb_env_copy2(handle, destination, compact ? UInt32(MDB_CP_COMPACT) : 0), "mdb_env_copy2",
                path: destination)
        }
    }

    /// Flushes buffers to disk (`mdb_env_sync`): makes every commit of a `noSync` or
    /// `noMetaSync` environment durable.
    public func sync() throws {
        try withOpenHandle { handle in try check(mdb_env_sync(handle, 1), "mdb_env_sync", path: path) }
    }

    /// Closes the environment: waits for queued async writes to commit and for transactions on
    /// other threads to end, then releases LMDB's handle. Further use is ``LMDBError/Code/closed``.
    /// Closing twice does nothing. The environment also closes when its last reference goes.
    ///
    /// - Precondition: not called inside a transaction closure of this environment (it would
    ///   wait for that transaction to end: a deadlock).
    public func close() {
        precondition(
            threadState.depth == 0,
            "Environment.close() called inside a transaction of the environment at \(path); close it after the closure returns")
        closeNow()
    }

    private func closeNow() {
        let writer = writerState.withLock { writer in
            defer { writer = nil }
            return writer
        }
        writer?.stop()
        resizeLock.lockExclusive()
        let (closing, _) = isClosed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
        resizeLock.unlock()
        guard closing else { return }
        for pooled in readPool.withLock({ pool in defer { pool = [] }; return pool }) {
            mdb_txn_abort(pooled.pointer)
        }
        mdb_env_close(handle)
        if commitSignalDescriptor >= 0 { Glibc.close(commitSignalDescriptor) }
        Environment.registry.release(canonicalPath)
    }

    /// Lends LMDB's handle to `body` inside a transaction scope: the resize lock is held shared,
    /// so neither a map resize (which remaps the meta pages `mdb_env_info` reads) nor `close()`
    /// (which frees the handle) can run meanwhile. Every use of the handle outside a
    /// transaction goes through here.
    func withOpenHandle<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        try enterTransactionScope()
        defer { leaveTransactionScope() }
        return try body(handle)
    }

    /// The LMDB library's version string, e.g. "LMDB 0.9.24: (July 24, 2019)".
    public static var libraryVersion: String { String(cString: mdb_version(nil, nil, nil)) }
}

/// An `MDB_txn` pointer kept in the read pool. `@unchecked Sendable`: with `MDB_NOTLS` a
/// reset read transaction may be renewed on any thread.
struct TransactionHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// What `mdb_env_info` and `mdb_env_stat` say about an environment.
/// One slot of LMDB's reader table.
public struct ReaderSlot: Sendable, Hashable, Codable {
    /// The process that holds the slot.
    public var pid: Int
    /// Its thread, as LMDB prints it.
    public var thread: String
    /// The snapshot (transaction id) the slot holds, or `nil` while it is idle.
    public var transaction: Int?
}

public struct EnvironmentInfo: Sendable, Hashable, Codable {
    /// The map size in bytes (address space reserved; grows on demand).
    public var mapSize: Int
    /// The page size in bytes.
    public var pageSize: Int
    /// The last page number in use; `(lastPageNumber + 1) × pageSize` bytes of the map are used.
    public var lastPageNumber: Int
    /// The id of the last committed transaction (any process's).
    public var lastTransactionID: Int
    /// The size of the reader table.
    public var maxReaders: Int
    /// The reader slots used so far (LMDB's high-water mark, `me_numreaders`, idle and pooled
    /// slots included); ``Environment/readers()`` tells which hold a snapshot now.
    public var readersInUse: Int

    /// Bytes of the map in use.
    public var usedBytes: Int { (lastPageNumber + 1) * pageSize }
}

/// The environments this process has open, by canonical path: LMDB allows one open of a
/// directory per process (two would share, and then break, its POSIX locks).
///
/// An entry whose environment is gone — its last reference went away and its `deinit` is
/// closing it, perhaps on another thread after a last in-flight write — is waited for, so that
/// dropping an environment and opening its directory again is deterministic. An entry whose
/// environment is alive is an error that says so.
final class OpenRegistry: @unchecked Sendable {
    // @unchecked Sendable: `entries` and every entry are touched only under `lock`.
    final class Entry: @unchecked Sendable {
        /// Set once the open completed; weak, so the registry never keeps an environment alive.
        weak var environment: Environment?
        var opened = false
    }

    private let lock = ConditionLock()
    private var entries: [String: Entry] = [:]
    /// How long an open waits for a dropped environment of the same directory to finish closing.
    private let closeWait: UInt64 = 30_000_000_000

    /// Claims `canonical` for an environment being opened; waits while a dropped environment
    /// of the same directory closes.
    func claim(_ canonical: String, path: String) throws -> Entry {
        lock.lock()
        defer { lock.unlock() }
        let deadline = monotonicNanoseconds() + closeWait
        while let existing = entries[canonical] {
            if !existing.opened {
                throw LMDBError(
                    code: .alreadyOpen, operation: "open", path: path,
                    message: "another thread of this process is opening the environment right now")
            }
            if existing.environment != nil {
                throw LMDBError(
                    code: .alreadyOpen, operation: "open", path: path,
                    message: "this process already has the environment open, and that Environment (or the store owning it) is still referenced",
                    hint: "Call close() on it first (close waits for its queued writes), or keep using it")
            }
            // Its last reference is gone and its deinit is closing it (its queued writes commit first).
            if !lock.wait(untilNanoseconds: deadline) && entries[canonical] === existing {
                throw LMDBError(
                    code: .alreadyOpen, operation: "open", path: path,
                    message: "a dropped Environment of this directory did not finish closing within 30 s")
            }
        }
        let entry = Entry()
        entries[canonical] = entry
        return entry
    }

    /// Marks the claim's open as complete.
    func opened(_ entry: Entry, _ environment: Environment) {
        lock.withLock {
            entry.environment = environment
            entry.opened = true
        }
    }

    /// Frees `canonical` (its environment closed, or its open failed) and wakes waiting opens.
    func release(_ canonical: String) {
        lock.withLock {
            entries[canonical] = nil
            lock.broadcast()
        }
    }
}
