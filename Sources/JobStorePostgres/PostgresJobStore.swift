import Foundation
import JobCore
import Instrumentation
import Locking
import Logging
import PostgresNIO

/// How a ``PostgresJobStore`` connects and behaves.
public struct PostgresStoreOptions: Sendable {
    /// The most connections the pool opens (each scheduler holds one more for its wake-ups).
    public var maximumConnections = 20
    /// How long opening the store waits for the server before it gives up with an error.
    public var connectTimeout: Duration = .seconds(10)
    /// When no notification came for this long, wake the schedulers anyway (a notification is
    /// lost when the listening connection drops; this bounds how late a job can start then).
    public var fallbackWakeUp: Duration = .seconds(10)
    /// Whether a commit waits until PostgreSQL has flushed it to disk (`synchronous_commit`, on
    /// by default). Off, a server crash may lose the last few hundred milliseconds of commits —
    /// never corrupt anything; like the embedded store's relaxed durability.
    public var synchronousCommit = true
    /// How long a pooled connection may sit unused before the pool closes it (beyond the first).
    ///
    /// Also a memory bound: postgres-nio's pool (1.33) keeps a timer task for this long after
    /// every release of a connection, about 0.8 KB each — at 4,000 statements/s the 60 s it
    /// defaults to hold some 190 MB; 10 s hold 30 MB.
    public var idleConnectionTimeout: Duration = .seconds(10)
    /// How often an idle connection is checked with a `SELECT 1`, so that a connection a
    /// firewall or the network dropped is found before a statement needs it; `nil` for never.
    /// A memory bound too, like ``idleConnectionTimeout`` (another timer per release).
    public var keepAliveFrequency: Duration? = .seconds(10)
    /// How long ``PostgresJobStore/close()`` waits for the client to shut its connections down
    /// before it returns without it (postgres-nio 1.33's client can stay suspended once cancelled
    /// while its pool reconnects).
    public var closeTimeout: Duration = .seconds(5)
    /// Where the store logs (connection losses, retried transactions).
    public var logger = Logger(label: "jobstore.postgres")
    /// Whether opening creates the schema in a database without one, or migrates an older one
    /// (on by default). Off — an operator's tool pointed at a database to inspect it — opening a
    /// database without a job store, or with an older schema, throws instead of changing it.
    public var createsSchema = true
    /// Whether every change records its event in the history (`jobstore_events`: each job's
    /// timeline, the store's history; on by default, as the embedded store always does). Off,
    /// nothing is recorded — timelines and the history stay empty — and a burn-down ran about
    /// 15 % faster here (docs/BENCHMARKS.md, 2026-12-07): for a program that needs throughput
    /// more than the record of what happened.
    public var recordsHistory = true
    /// The instrument that writes an enqueuing task's trace context into its new jobs' headers
    /// (`JobCore/JobTraceContext`); `nil` (the default): the process's bootstrapped one.
    public var traceInstrument: (any Instrument)?

    /// The defaults.
    public init() {}
}

/// Jobs and pipelines in PostgreSQL: the same scheduler, the same queries and the same rules as
/// the embedded store (`JobStore/JobRepository`), for programs that run on several machines.
/// Several processes share one database: claims take ready jobs with `FOR UPDATE SKIP LOCKED`
/// on a partial index, so they never wait on each other nor take the same job; wake-ups come by
/// `LISTEN`/`NOTIFY`; counts per state are kept by triggers in the same transaction as the rows.
///
/// ```swift
/// let store = try await PostgresJobStore(url: "postgres://app@db.internal:5432/app")
/// var scheduler = Scheduler(backend: store)  // the same scheduler as on LMDB
/// ```
///
/// The schema (docs/POSTGRES.md) is created or migrated on open, in one transaction under an
/// advisory lock. Every method runs in its own transaction; a transaction that PostgreSQL
/// aborts for a deadlock or a serialization failure is run again. Times are this machine's
/// clock: keep the machines' clocks in step (NTP), as leases are compared across them.
public final class PostgresJobStore: AdministrableStore {
    let client: PostgresClient
    let logger: Logger
    let ids = JobIDGenerator()
    let options: PostgresStoreOptions
    /// Where the store connects, without the password (for messages).
    public let location: String
    private let running: Task<Void, Never>
    private let state = Lock<(subscribers: [Int: AsyncStream<WorkSignal>.Continuation], next: Int, listener: Task<Void, Never>?, closed: Bool)>(
        ([:], 0, nil, false))

    /// Opens the job store in the database `url` names (`postgres://user:password@host:port/database`,
    /// with an optional `?sslmode=disable|prefer|require`; `disable` is the default on a loopback
    /// address, `prefer` elsewhere), creating or migrating its schema.
    ///
    /// - Throws: `.invalidArgument` for a URL that is not one; `.backend` when the server cannot
    ///   be reached within ``PostgresStoreOptions/connectTimeout`` or refuses the login;
    ///   `.newerFormat` for a schema written by a newer program.
    public init(url: String, options: PostgresStoreOptions = PostgresStoreOptions()) async throws {
        let (configuration, location, directTLS) = try PostgresJobStore.configuration(url: url, options: options)
        self.options = options
        self.logger = options.logger
        self.location = location
        let client = PostgresClient(configuration: configuration, backgroundLogger: options.logger)
        self.client = client
        self.running = Task { await client.run() }
        do {
            try await withTimeout(options.connectTimeout, "reach PostgreSQL at \(location)") { [self] in
                try await probe(configuration, tls: directTLS)
                try await migrate()
            }
        } catch {
            running.cancel()
            throw error
        }
    }

    /// Stops the wake-ups (every ``workSignals()`` stream ends) and closes the connections,
    /// waiting at most ``PostgresStoreOptions/closeTimeout`` for the client to stop. Calls in
    /// flight fail; the store cannot be used after.
    public func close() async {
        let (subscribers, listener) = state.withLock { state in
            state.closed = true
            defer { state.subscribers = [:] }
            return (Array(state.subscribers.values), state.listener)
        }
        for subscriber in subscribers { subscriber.finish() }
        listener?.cancel()
        running.cancel()
        if await !finished(running, within: options.closeTimeout) {
            // Seen when the database went away while the pool reconnected (vapor/postgres-nio#599).
            logger.warning("the PostgreSQL client did not stop within \(options.closeTimeout) of close(); going on without it", metadata: ["location": "\(location)"])
        }
    }

    deinit { running.cancel() }

    // MARK: Connecting

    /// The client configuration a URL names, and the URL without its password.
    /// The pool's configuration, the location for messages, and the TLS of a direct connection.
    static func configuration(url: String, options: PostgresStoreOptions) throws -> (PostgresClient.Configuration, String, PostgresConnection.Configuration.TLS) {
        let usage = "Give a URL such as postgres://user:password@localhost:5432/database"
        guard let parts = URLComponents(string: url), parts.scheme == "postgres" || parts.scheme == "postgresql",
            let host = parts.host, !host.isEmpty
        else {
            throw JobStoreError(.invalidArgument, "'\(url.split(separator: "@").last ?? "")' is not a PostgreSQL URL", hint: usage)
        }
        let port = parts.port ?? 5432
        let database = parts.path.split(separator: "/").first.map(String.init)
        let location = "\(host):\(port)/\(database ?? "")"
        let loopback = host == "localhost" || host == "127.0.0.1" || host == "::1"
        let mode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? (loopback ? "disable" : "prefer")
        let tls: PostgresClient.Configuration.TLS
        let directTLS: PostgresConnection.Configuration.TLS
        switch mode {
        case "disable": (tls, directTLS) = (.disable, .disable)
        case "prefer": (tls, directTLS) = (.prefer(.makeClientConfiguration()), .prefer(try PostgresJobStore.tlsContext()))
        case "require", "verify-full": (tls, directTLS) = (.require(.makeClientConfiguration()), .require(try PostgresJobStore.tlsContext()))
        default:
            throw JobStoreError(.invalidArgument, "sslmode '\(mode)' is not one of disable, prefer, require", hint: usage)
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: parts.user ?? "postgres", password: parts.password, database: database, tls: tls)
        configuration.options.maximumConnections = max(2, options.maximumConnections)
        configuration.options.connectTimeout = options.connectTimeout
        configuration.options.connectionIdleTimeout = options.idleConnectionTimeout
        configuration.options.keepAliveBehavior = options.keepAliveFrequency.map { .init(frequency: $0) }
        if !options.synchronousCommit { configuration.options.additionalStartupParameters.append(("options", "-c synchronous_commit=off")) }
        return (configuration, location, directTLS)
    }

    private static func tlsContext() throws -> NIOSSLContext {
        do { return try NIOSSLContext(configuration: .makeClientConfiguration()) } catch {
            throw JobStoreError(.backend, "could not set up TLS for PostgreSQL: \(error)")
        }
    }

    /// Connects once, directly: the pool retries a connection that fails, so a missing database
    /// or a refused login would otherwise show only as a timeout. Says which it is, at once.
    private func probe(_ configuration: PostgresClient.Configuration, tls: PostgresConnection.Configuration.TLS) async throws {
        var direct = PostgresConnection.Configuration(
            host: configuration.host ?? "localhost", port: configuration.port ?? 5432, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: tls)
        direct.options.additionalStartupParameters = configuration.options.additionalStartupParameters
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: direct, id: 0, logger: logger)
        } catch let error as PSQLError {
            let state = error.serverInfo?[.sqlState] ?? ""
            let database = configuration.database ?? configuration.username
            switch state {
            case "3D000":
                throw JobStoreError(
                    .notAJobStore, "PostgreSQL at \(location) has no database '\(database)'",
                    hint: "Create it (createdb -h \(configuration.host ?? "localhost") -p \(configuration.port ?? 5432) -U \(configuration.username) \(database)), or check the URL's database")
            case "28P01", "28000":
                throw JobStoreError(
                    .backend, "PostgreSQL at \(location) refused the login of '\(configuration.username)': \(error.serverInfo?[.message] ?? "")",
                    hint: "Check the URL's user and password, and pg_hba.conf on the server")
            default:
                if error.serverInfo != nil { throw backendError("accept a connection", error) }
                throw JobStoreError(
                    .backend, "could not connect to PostgreSQL at \(location): \(error.underlying.map { "\($0)" } ?? "\(error.code)")",
                    hint: "Check the URL, that the server runs, and that it accepts connections from this machine")
            }
        }
        try? await connection.close()
    }

    /// Creates the schema, or migrates it to ``Schema/version``, in one transaction under an
    /// advisory lock (two processes opening at once: the second waits, then finds it done).
    private func migrate() async throws {
        try await transaction("migrate the schema") { txn in
            if !options.createsSchema {
                let exists = try await txn.rows("SELECT to_regclass('jobstore_meta') IS NOT NULL") { try $0.decode(Bool.self) }.first ?? false
                let version = exists ? try await txn.rows(Statements.schemaVersion()) { try $0.decode(Int64.self) }.first ?? 0 : 0
                guard version > 0 else {
                    throw JobStoreError(
                        .notAJobStore, "there is no job store in PostgreSQL at \(self.location) (no jobstore_meta table)",
                        hint: "Check the URL's database; a program that opens it with PostgresJobStore creates the schema")
                }
                guard version >= Schema.version else {
                    throw JobStoreError(
                        .newerFormat, "the job store in PostgreSQL at \(self.location) has schema version \(version); this program reads \(Schema.version)",
                        hint: "Open it once with a program that migrates it (a scheduler, or this one with PostgresStoreOptions.createsSchema)")
                }
            }
            try await txn.run(Statements.lockMigrations())
            try await txn.run(PostgresQuery(unsafeSQL: Schema.meta))
            let version = try await txn.rows(Statements.schemaVersion()) { try $0.decode(Int64.self) }.first ?? 0
            if version > Schema.version {
                throw JobStoreError(
                    .newerFormat, "the job store in PostgreSQL at \(self.location) has schema version \(version); this program knows up to \(Schema.version)",
                    hint: "Upgrade this program to the version that migrated the database")
            }
            for step in Schema.migrations.dropFirst(Int(version)) {
                for statement in step { try await txn.run(PostgresQuery(unsafeSQL: statement)) }
            }
            if version < Schema.version { try await txn.run(Statements.setSchemaVersion(Schema.version)) }
        }
    }

    // MARK: Transactions

    /// Runs `body` in one transaction on a pooled connection: committed if it returns, rolled
    /// back if it throws. A deadlock, a serialization failure or a lost race for a unique key is
    /// retried (up to 10 times); other PostgreSQL errors become ``JobStore/JobStoreError`` `.backend`,
    /// saying `what` failed.
    func transaction<T: Sendable>(
        _ what: String, rollingBack: Bool = false, _ body: (PostgresTransaction) async throws -> T
    ) async throws -> T {
        try await withRetries(what) { connection in
            _ = try await connection.answer("BEGIN", logger: logger)
            do {
                let txn = PostgresTransaction(connection, store: self)
                let value = try await body(txn)
                try await txn.writeEvents()
                _ = try await connection.answer(rollingBack ? "ROLLBACK" : "COMMIT", logger: logger)
                return value
            } catch {
                // A connection the server closed has rolled back already, and a query
                // sent on it may never be answered (postgres-nio 1.33): send none.
                if !PostgresJobStore.isConnectionLost(error) { _ = try? await connection.answer("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    /// Runs `body`, which sends exactly one statement, on its own: PostgreSQL runs a lone
    /// statement as a transaction of its own, so this is ``transaction(_:_:)`` without the
    /// BEGIN and COMMIT round trips (a point read takes one round trip instead of three).
    func statement<T: Sendable>(_ what: String, _ body: (PostgresTransaction) async throws -> T) async throws -> T {
        try await withRetries(what) { connection in
            let txn = PostgresTransaction(connection, store: self)
            let value = try await body(txn)
            // Its events went with its one statement (PostgresTransaction.write): a second one
            // would not be in the same transaction.
            assert(!txn.hasPendingEvents, "\(what): a lone statement left events unwritten")
            return value
        }
    }

    /// Runs `body` on a pooled connection; retries it as ``transaction(_:_:)`` says, and turns
    /// other PostgreSQL errors into `.backend` ones.
    private func withRetries<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withConnection { try await body($0) }
            } catch let error as PSQLError where attempt < 10 && PostgresJobStore.isRetryable(error) {
                logger.debug("retrying a transaction", metadata: ["what": "\(what)", "sqlstate": "\(error.serverInfo?[.sqlState] ?? "")"])
                continue
            } catch let error as JobStoreError {
                throw error
            } catch {
                throw backendError(what, error)
            }
        }
    }

    /// Whether PostgreSQL aborted the transaction for a reason a second run may not meet: a
    /// serialization failure, a deadlock, or another transaction taking a unique key first.
    static func isRetryable(_ error: PSQLError) -> Bool {
        switch error.serverInfo?[.sqlState] {
        case "40001", "40P01": true
        case "23505": error.serverInfo?[.constraintName] == "jobstore_jobs_unique"
        default: false
        }
    }

    /// Whether `error` says the connection is gone (closed by either side, reset, or the server
    /// shutting down: SQLSTATE classes 08 and 57).
    static func isConnectionLost(_ error: any Error) -> Bool {
        if error is ConnectionClosed { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown: return true
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57")
        default: return false
        }
    }

    /// A failure of PostgreSQL or of the connection to it, said in words.
    func backendError(_ what: String, _ error: any Error) -> JobStoreError {
        if let error = error as? JobStoreError { return error }
        guard let error = error as? PSQLError else {
            return JobStoreError(
                .backend, "could not \(what) in PostgreSQL at \(location): \(error)",
                hint: PostgresJobStore.isConnectionLost(error) ? "Check that the server runs; the scheduler retries on its own" : nil)
        }
        if let info = error.serverInfo {
            let detail = [info[.message], info[.detail]].compactMap { $0 }.joined(separator: ": ")
            return JobStoreError(
                .backend, "PostgreSQL at \(location) refused to \(what): \(detail) (SQLSTATE \(info[.sqlState] ?? "?"))")
        }
        return JobStoreError(
            .backend, "could not \(what): the connection to PostgreSQL at \(location) failed (\(error.code))",
            hint: "Check that the server runs and accepts connections; the scheduler retries on its own")
    }

    /// Runs `body`, or throws `.backend` if it takes longer than `limit`.
    private func withTimeout(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished {
                throw JobStoreError(
                    .backend, "could not \(what) within \(limit)",
                    hint: "Check the URL, that the server runs, and that it accepts connections from this machine")
            }
        }
    }

    // MARK: Wake-ups

    /// See `JobCore/SchedulerBackend/workSignals()`: notifications on channel `jobstore`,
    /// sent by the triggers when a job becomes pending (`work`) or a running one is cancelled or
    /// deleted (`cancel <id>`), from any process; after each (re)connection of the listener, and
    /// every ``PostgresStoreOptions/fallbackWakeUp`` without a notification, a `workAvailable`.
    public func workSignals() -> AsyncStream<WorkSignal> {
        let (stream, continuation) = AsyncStream<WorkSignal>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let id: Int? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.next
            state.next += 1
            state.subscribers[id] = continuation
            if state.listener == nil { state.listener = Task { [weak self] in await self?.listen() } }
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) } }
        return stream
    }

    private func broadcast(_ signal: WorkSignal) {
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.yield(signal) }
    }

    /// Listens on channel `jobstore` on one pooled connection, reconnecting with backoff.
    private func listen() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "jobstore") { notifications in
                        self.broadcast(.workAvailable)  // whatever was sent while nobody listened
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            let heard = Lock(false)
                            group.addTask {
                                for try await notification in notifications {
                                    heard.withLock { $0 = true }
                                    self.handle(notification.payload)
                                }
                            }
                            group.addTask {
                                while true {
                                    try await Task.sleep(for: self.options.fallbackWakeUp)
                                    let quiet = heard.withLock { heard in
                                        defer { heard = false }
                                        return !heard
                                    }
                                    if quiet { self.broadcast(.workAvailable) }
                                }
                            }
                            try await group.next()
                            group.cancelAll()
                        }
                    }
                }
                delay = .milliseconds(100)
            } catch {
                if Task.isCancelled { return }
                logger.warning("the wake-up listener lost its connection; reconnecting", metadata: ["error": "\(backendError("listen", error))"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    private func handle(_ payload: String) {
        if payload == "work" {
            broadcast(.workAvailable)
        } else if payload.hasPrefix("cancel "), let id = try? JobID(parsing: String(payload.dropFirst(7))) {
            broadcast(.cancelled(id))
        }
    }
}
