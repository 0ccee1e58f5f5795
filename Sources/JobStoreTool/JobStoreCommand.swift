import ArgumentParser
import Foundation
import JobStore
import LMDB
#if Postgres
import JobStorePostgres
#endif

/// The `jobstore` admin tool: inspect and repair a store, run the demo and the benchmarks.
///
/// Exit codes: 0 success; 1 a failure was found (e.g. `verify` found problems) or a runtime
/// error occurred; 2 usage error. Errors are one line on stderr saying what to do.
@main
struct JobStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobstore",
        abstract: "Inspect, repair and benchmark JobStore stores (LMDB environments).",
        discussion: """
            Commands that only read open the store read-only and keep every read transaction short, \
            so they are safe on a store another process is writing.
            Exit codes: 0 success; 1 a failure was found or a runtime error occurred; 2 usage error.
            """,
        version: "0.3.0 (store format \(Schema.formatVersion))",
        subcommands: [
            Stats.self, Jobs.self, Pipelines.self, Queues.self, Schedules.self, Workers.self, VerifyCommand.self, Backup.self, Export.self, Import.self, Prune.self,
            Requeue.self, Cancel.self, Retry.self, Delete.self, Readers.self, Top.self, Demo.self, Bench.self,
        ] + optionalCommands
    )

    /// Commands built only with a package trait: `serve` with `Dashboard` (the default).
    static var optionalCommands: [any ParsableCommand.Type] {
        #if Dashboard
        [Serve.self]
        #else
        []
        #endif
    }

    static func main() async {
        do {
            // First without the commands' own checks: ArgumentParser runs `validate()` before it
            // looks for arguments nothing took, so a mistyped option (`--queu mail`) got a
            // check's message ("not both, not neither") instead of "Unknown option '--queu'".
            Validation.enabled = false
            _ = try parseAsRoot()
            Validation.enabled = true
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            finish(with: error)
        }
    }

    /// Exits with the documented code: 0 for help, 2 for a usage error (one line naming what is
    /// wrong), the given code for an `ExitCode`, 1 for every other error (one line).
    static func finish(with error: Error) -> Never {
        if let exit = error as? ExitCode { Foundation.exit(exit.rawValue) }
        let code = exitCode(for: error)
        if code == .success {
            print(fullMessage(for: error))
            Foundation.exit(0)
        }
        if code == .validationFailure || error is ValidationError {
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            FileHandle.standardError.write(Data("jobstore: \(message) (see `jobstore help`)\n".utf8))
            Foundation.exit(2)
        }
        FileHandle.standardError.write(Data("jobstore: \(error)\n".utf8))
        Foundation.exit(1)
    }
}

/// Options every store command takes.
struct StoreOptions: ParsableArguments {
    @Argument(help: "The store: its directory (LMDB), or for the commands that take one a PostgreSQL URL (postgres://user@host:port/database).")
    var path: String

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// Opens the store read-only (never creates anything) or for writing (an existing store only).
    /// A read-only open by a user who may not write the lock file reads without LMDB's lock (and
    /// warns), unless `readerTable` says the command is about the lock file's reader table.
    /// `upgrading: false` (a dry run) opens a store of an older format writable without
    /// upgrading it (``JobStoreOptions/upgradesFormat``).
    func open(writable: Bool = false, readerTable: Bool = false, upgrading: Bool = true) throws -> JobRepository {
        if isURL {
            throw CommandFailure("""
                this command works on an LMDB store (a directory), not on a PostgreSQL database. On PostgreSQL, \
                stats, jobs list/show/history, pipelines list/show/delete, queues (and their controls), schedules, \
                top, serve, verify, prune, export, import, and cancel, retry, requeue and delete by id or filter take a URL (docs/ADMIN.md)
                """)
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("\(path) does not exist; give the directory of a store")
        }
        if path.hasSuffix("data.mdb") || path.hasSuffix("lock.mdb") {
            let directory = (path as NSString).deletingLastPathComponent
            throw ValidationError("\(path) is a file of a store; give its directory: \(directory.isEmpty ? "." : directory)")
        }
        guard FileManager.default.fileExists(atPath: path + "/data.mdb") else {
            throw CommandFailure("\(path) is not a job store (it has no data.mdb)")
        }
        var options = JobStoreOptions(readOnly: !writable, cache: CacheOptions(enabled: false))
        options.environment.readTransactionPoolSize = 2
        options.upgradesFormat = upgrading
        if readerTable, let file = unwritableLock() {
            throw CommandFailure("the reader table is kept in \(path)/lock.mdb, and this user may not write \(file). Run as the store's owner")
        }
        if !writable, let file = unwritableLock() {
            // Even a reader writes LMDB's lock file. Another user's store, or a read-only copy:
            // read it without the lock rather than not at all, and say what that risks.
            options.environment.withoutLock = true
            warn("""
                this user may not write \(file), so \(path) is read without LMDB's lock: a process \
                writing the store meanwhile is not seen and may change pages this command reads. \
                For a live store, run as its owner.
                """)
        }
        do {
            return try JobRepository(path: path, options: options)
        } catch let error as JobStoreError where (error.underlying as? LMDBError)?.code == .permissionDenied {
            throw CommandFailure("cannot write to \(path): \((error.underlying as? LMDBError)?.message ?? "permission denied"). Run as the store's owner")
        }
    }

    /// Whether the store is given as a PostgreSQL URL.
    var isURL: Bool { Self.isURL(path) }

    /// Whether `path` is a PostgreSQL URL rather than a directory.
    static func isURL(_ path: String) -> Bool { path.hasPrefix("postgres://") || path.hasPrefix("postgresql://") }

    /// Opens the store the command was given, either backend: a directory as ``open(writable:readerTable:upgrading:)``
    /// does; a PostgreSQL URL (with the `Postgres` trait, a default one) without creating or
    /// migrating anything, so a wrong URL changes no database.
    func openAny(writable: Bool = false, upgrading: Bool = true, creatingSchema: Bool = false) async throws -> OpenedStore {
        guard isURL else {
            let store = try open(writable: writable, upgrading: upgrading)
            return OpenedStore(store: store, lmdb: store, location: path)
        }
        #if Postgres
        var options = PostgresStoreOptions()
        options.createsSchema = creatingSchema
        options.maximumConnections = 2
        // The pool's connection attempts log at info; the tool says what failed itself.
        options.logger.logLevel = .critical
        let store = try await PostgresJobStore(url: path, options: options)
        return OpenedStore(store: store, lmdb: nil, location: "PostgreSQL at \(store.location)")
        #else
        throw CommandFailure("this jobstore was built without PostgreSQL: build it with its Postgres trait (`swift build --traits Dashboard,Postgres`)")
        #endif
    }

    /// The lock file (or, without one, the directory) this user may not write, if so: then a
    /// read-only `open()` reads without LMDB's lock and sees no reader table.
    func unwritableLock() -> String? {
        let lock = path + "/lock.mdb"
        if access(lock, F_OK) == 0 { return access(lock, W_OK) == 0 ? nil : lock }
        return access(path, W_OK) == 0 ? nil : path
    }
}

/// A store the tool opened (``StoreOptions/openAny(writable:)``): seen through what every
/// backend answers, and as the LMDB store when it is one (the environment, readers, backup and
/// the record checks are LMDB's alone).
struct OpenedStore {
    let store: any AdministrableStore
    let lmdb: JobRepository?
    /// Where it is, for messages: the directory, or "PostgreSQL at host:port/database".
    let location: String

    /// Closes it (call before the command returns).
    func close() async {
        if let lmdb {
            lmdb.close()
            return
        }
        #if Postgres
        await (store as? PostgresJobStore)?.close()
        #endif
    }

    /// Runs `body` with the store open, and closes it after, whether `body` throws or not.
    static func with<T>(
        _ options: StoreOptions, writable: Bool = false, upgrading: Bool = true, creatingSchema: Bool = false, _ body: (OpenedStore) async throws -> T
    ) async throws -> T {
        let opened = try await options.openAny(writable: writable, upgrading: upgrading, creatingSchema: creatingSchema)
        do {
            let value = try await body(opened)
            await opened.close()
            return value
        } catch {
            await opened.close()
            throw error
        }
    }
}

/// Whether the commands' `validate()` checks run: off for a first parse that only looks for
/// unknown options and arguments (see ``JobStoreCommand/main()``). Set before any task starts.
enum Validation {
    nonisolated(unsafe) static var enabled = true
}

/// A runtime failure with a message for the user (exit 1).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
