import CLMDB

#if canImport(Glibc)
import Glibc
#endif

/// An error from LMDB or from this wrapper: what went wrong, where, and what to do.
///
/// Every LMDB return code has its own ``Code``; a missing key on `get` is `nil`, never an
/// error. Match a code in a `catch` clause:
///
/// ```swift
/// do {
///     try txn.put(db, key, value, options: .noOverwrite)
/// } catch LMDBError.Code.keyExists {
///     // already there
/// }
/// ```
public struct LMDBError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public let code: Code
    /// LMDB's return value (an `MDB_*` code or an `errno`), or `nil` for errors the wrapper raises itself.
    public let returnCode: Int32?
    /// The operation that failed, e.g. `mdb_put` or `open`.
    public let operation: String
    /// The named database involved, if any.
    public let database: String?
    /// The environment's directory, if known.
    public let path: String?
    /// What went wrong, in words: LMDB's own text for its codes.
    public let message: String
    /// What the caller can do about it.
    public let hint: String?

    init(
        code: Code, returnCode: Int32? = nil, operation: String, database: String? = nil,
        path: String? = nil, message: String, hint: String? = nil
    ) {
        self.code = code
        self.returnCode = returnCode
        self.operation = operation
        self.database = database
        self.path = path
        self.message = message
        self.hint = hint ?? code.defaultHint
    }

    /// Builds the error for an LMDB return value `rc` (non-zero).
    init(returnCode rc: Int32, operation: String, database: String? = nil, path: String? = nil) {
        var text = String(cString: mdb_strerror(rc))
        var hint: String?
        // A write that found no room: LMDB says ENOSPC, or EIO for a short write. Say so.
        if rc == ENOSPC || rc == EIO, let path {
            var fs = statvfs()
            if statvfs(path, &fs) == 0 {
                let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
                if rc == ENOSPC || free < 16 << 20 {
                    text += " — the disk holding the store is full (\(free / 1024) KiB free)"
                    hint = "Nothing of this write was committed; free space on that disk (or move the store), then write again"
                }
            }
        }
        self.init(
            code: Code(returnCode: rc), returnCode: rc, operation: operation,
            database: database, path: path, message: text, hint: hint)
    }

    public var description: String {
        var text = "\(operation) failed"
        if let database { text += " on database '\(database)'" }
        if let path { text += " in \(path)" }
        text += ": \(message)"
        if let returnCode { text += " (\(code), code \(returnCode))" } else { text += " (\(code))" }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// Returns the same error with the database and path filled in where they were missing.
    func with(database: String? = nil, path: String? = nil) -> LMDBError {
        LMDBError(
            code: code, returnCode: returnCode, operation: operation,
            database: self.database ?? database, path: self.path ?? path,
            message: message, hint: hint)
    }
}

extension LMDBError {
    /// The kind of an ``LMDBError``: one per LMDB return code, plus the wrapper's own.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// `MDB_KEYEXIST`: a put with `noOverwrite` or `noDuplicateData` found the key (or pair) present.
        public static let keyExists = Code("keyExists")
        /// `MDB_NOTFOUND`: no such key or data. `get` returns `nil` instead; this code appears only
        /// where absence is an error (e.g. deleting a named database that does not exist).
        public static let notFound = Code("notFound")
        /// `MDB_PAGE_NOTFOUND`: a page was not found; the file is damaged or truncated.
        public static let pageNotFound = Code("pageNotFound")
        /// `MDB_CORRUPTED`: a page has an invalid type; the file is damaged.
        public static let corrupted = Code("corrupted")
        /// `MDB_PANIC`: an earlier fatal error; the environment must be closed and reopened.
        public static let panic = Code("panic")
        /// `MDB_VERSION_MISMATCH`: the environment was written by an incompatible LMDB version.
        public static let versionMismatch = Code("versionMismatch")
        /// `MDB_INVALID`: the file is not an LMDB data file.
        public static let invalidFile = Code("invalidFile")
        /// `MDB_MAP_FULL`: the map is full. The wrapper grows the map and re-runs the write,
        /// so callers see this only when growing failed.
        public static let mapFull = Code("mapFull")
        /// `MDB_DBS_FULL`: more named databases than `maxDatabases` were opened.
        public static let databasesFull = Code("databasesFull")
        /// `MDB_READERS_FULL`: every slot of the reader table is taken (all processes count).
        public static let readersFull = Code("readersFull")
        /// `MDB_TLS_FULL`: too many thread-local keys (cannot happen with `MDB_NOTLS`, which is always on).
        public static let tlsFull = Code("tlsFull")
        /// `MDB_TXN_FULL`: the write transaction has too many dirty pages; commit in smaller batches.
        public static let transactionFull = Code("transactionFull")
        /// `MDB_CURSOR_FULL`: the cursor stack is too deep (internal error or corrupted file).
        public static let cursorFull = Code("cursorFull")
        /// `MDB_PAGE_FULL`: a page has no more space (internal error).
        public static let pageFull = Code("pageFull")
        /// `MDB_MAP_RESIZED`: another process grew the map. The wrapper adopts the new size and retries.
        public static let mapResized = Code("mapResized")
        /// `MDB_INCOMPATIBLE`: a database was opened with flags that differ from the ones it was created with.
        public static let incompatible = Code("incompatible")
        /// `MDB_BAD_RSLOT`: a reader slot was misused.
        public static let badReaderSlot = Code("badReaderSlot")
        /// `MDB_BAD_TXN`: the transaction must abort (an earlier operation in it failed), has a child, or is invalid.
        public static let badTransaction = Code("badTransaction")
        /// `MDB_BAD_VALSIZE`: a key, or a value of a `duplicateSort` database, is empty or too long.
        public static let badValueSize = Code("badValueSize")
        /// `MDB_BAD_DBI`: the database handle was closed or changed unexpectedly.
        public static let badDatabaseHandle = Code("badDatabaseHandle")
        /// An operating-system error (`errno`), e.g. `ENOENT`, `EACCES`, `ENOSPC`.
        public static let system = Code("system")

        /// The same directory is already open in this process (LMDB forbids opening it twice).
        public static let alreadyOpen = Code("alreadyOpen")
        /// The environment has been closed.
        public static let closed = Code("closed")
        /// A write was attempted on an environment opened read-only.
        public static let readOnly = Code("readOnly")
        /// A write transaction was begun on a thread that already has one (it would deadlock).
        public static let reentrantWrite = Code("reentrantWrite")
        /// A key is empty or longer than LMDB's maximum key size (511 bytes).
        public static let invalidKeySize = Code("invalidKeySize")
        /// A value of a `duplicateSort` database is empty or longer than the maximum key size,
        /// or a `duplicateFixed` value has a different size from the others.
        public static let invalidValueSize = Code("invalidValueSize")
        /// An `append` put whose key (or duplicate) does not sort after the last one.
        public static let appendOutOfOrder = Code("appendOutOfOrder")
        /// A transaction or cursor was used outside the closure it was handed to.
        public static let transactionEnded = Code("transactionEnded")
        /// A write was attempted while bytes borrowed from the map are in scope (they would be invalidated).
        public static let borrowedBytesInScope = Code("borrowedBytesInScope")
        /// A parent transaction was used while its nested (child) transaction is open.
        public static let childTransactionActive = Code("childTransactionActive")
        /// A database handle was used with a transaction of another environment.
        public static let wrongEnvironment = Code("wrongEnvironment")
        /// A database was used that was not declared when the environment was opened.
        public static let undeclaredDatabase = Code("undeclaredDatabase")
        /// Stored bytes could not be decoded by the database's codec.
        public static let decodingFailed = Code("decodingFailed")
        /// A value could not be encoded by the database's codec.
        public static let encodingFailed = Code("encodingFailed")
        /// A read-only open found no LMDB environment at the path.
        public static let notAnEnvironment = Code("notAnEnvironment")
        /// An argument is out of range (e.g. a database definition with contradictory flags).
        public static let invalidArgument = Code("invalidArgument")
        /// The process may not open the environment's files as it needs to (`EACCES`, `EROFS`):
        /// another user's store, or a read-only directory or file system.
        public static let permissionDenied = Code("permissionDenied")

        init(returnCode rc: Int32) {
            switch rc {
            case MDB_KEYEXIST: self = .keyExists
            case MDB_NOTFOUND: self = .notFound
            case MDB_PAGE_NOTFOUND: self = .pageNotFound
            case MDB_CORRUPTED: self = .corrupted
            case MDB_PANIC: self = .panic
            case MDB_VERSION_MISMATCH: self = .versionMismatch
            case MDB_INVALID: self = .invalidFile
            case MDB_MAP_FULL: self = .mapFull
            case MDB_DBS_FULL: self = .databasesFull
            case MDB_READERS_FULL: self = .readersFull
            case MDB_TLS_FULL: self = .tlsFull
            case MDB_TXN_FULL: self = .transactionFull
            case MDB_CURSOR_FULL: self = .cursorFull
            case MDB_PAGE_FULL: self = .pageFull
            case MDB_MAP_RESIZED: self = .mapResized
            case MDB_INCOMPATIBLE: self = .incompatible
            case MDB_BAD_RSLOT: self = .badReaderSlot
            case MDB_BAD_TXN: self = .badTransaction
            case MDB_BAD_VALSIZE: self = .badValueSize
            case MDB_BAD_DBI: self = .badDatabaseHandle
            default: self = .system
            }
        }

        var defaultHint: String? {
            switch self {
            case .pageNotFound, .corrupted, .invalidFile:
                return "The store file is damaged or not an LMDB file; restore it from a backup"
            case .panic:
                return "Close the environment and open it again"
            case .versionMismatch:
                return "Open it with the LMDB version that wrote it"
            case .databasesFull:
                return "Raise maxDatabases in the environment options"
            case .readersFull:
                return "Close idle readers, clear the slots of dead processes (`Environment.clearStaleReaders()`, or `mdb_stat -rr PATH`), or raise maxReaders"
            case .transactionFull:
                return "Write fewer entries per transaction"
            case .incompatible:
                return "Open the database with the flags it was created with"
            case .alreadyOpen:
                return "Reuse the open Environment, or close it before opening the path again"
            case .closed:
                return "Open the environment again"
            case .readOnly:
                return "Open the environment without readOnly to write"
            case .reentrantWrite:
                return "Do the work inside the write transaction you already have"
            case .transactionEnded:
                return "Use a transaction or cursor only inside the closure it was handed to"
            case .borrowedBytesInScope:
                return "Copy what you need out of the borrowed bytes, leave the closure, then write"
            case .childTransactionActive:
                return "Use the child transaction until its closure returns"
            case .undeclaredDatabase:
                return "List the database in the environment's `databases` when opening it"
            case .notAnEnvironment:
                return "Check the path; a read-only open never creates a store"
            default:
                return nil
            }
        }

        /// Lets a `catch` clause match a code: `catch LMDBError.Code.mapFull { … }`.
        public static func ~= (pattern: Code, error: any Error) -> Bool {
            (error as? LMDBError)?.code == pattern
        }
    }
}

/// Throws an ``LMDBError`` for a non-zero LMDB return value.
@inline(__always)
func check(
    _ rc: Int32, _ operation: @autoclosure () -> String, database: @autoclosure () -> String? = nil,
    path: @autoclosure () -> String? = nil
) throws(LMDBError) {
    if rc != 0 {
        throw LMDBError(returnCode: rc, operation: operation(), database: database(), path: path())
    }
}
