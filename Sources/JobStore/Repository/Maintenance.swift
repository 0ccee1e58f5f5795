internal import LMDB

// The store's own face for what operators and tools need of the environment beneath it, so a
// program (the admin tool included) needs `JobStore` alone. Each call wraps LMDB's errors.

extension JobRepository {
    /// The store's directory, as given when it was opened.
    public var path: String { environment.path }

    /// The store's format version as stored (`Schema/formatVersion` once a writable open
    /// upgraded it; a format-1 store opened read-only stays 1).
    public func formatVersion() throws -> UInt32 {
        try reading { txn in
            try txn.withValue(db.meta, MetaKey.formatVersion) { bytes in
                guard let bytes, bytes.count == 4 else {
                    throw JobStoreError(.corruptRecord, "meta has no 4-byte format_version", hint: "Run `jobstore verify`")
                }
                return UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
            }
        }
    }

    /// The environment's map size, page use, last transaction and reader slots.
    public func environmentInfo() throws -> EnvironmentInfo {
        try wrappingErrors { EnvironmentInfo(try environment.info()) }
    }

    /// Writes a consistent copy of the store into `destination`, an existing empty directory,
    /// while the store stays in use; `compact` leaves free pages out. The copy holds a read
    /// snapshot for its whole duration, so the store's file may grow meanwhile.
    public func backup(to destination: String, compact: Bool = false) throws {
        try wrappingErrors { try environment.copy(to: destination, compact: compact) }
    }

    /// LMDB's reader table (pid, thread, transaction of each slot), as `mdb_stat -r` prints it.
    public func readerTable() throws -> String {
        try wrappingErrors { try environment.readerTable() }
    }

    /// The reader table's slots: process, thread, and the snapshot each holds (`nil` when idle).
    public func readers() throws -> [ReaderSlot] {
        try wrappingErrors { try environment.readers().map(ReaderSlot.init) }
    }

    /// The pages on LMDB's free list: freed by past commits, reused before the file grows.
    public func freePages() throws -> Int {
        try wrappingErrors { try environment.freePages() }
    }

    /// Frees the reader slots of processes that died; returns how many.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        try wrappingErrors { try environment.clearStaleReaders() }
    }

    /// Flushes every commit to disk (what a `noSync` store defers).
    public func sync() throws {
        try wrappingErrors { try environment.sync() }
    }

    /// How many async writes the writer thread served, in how many commits.
    public var writerStatistics: WriterStatistics { WriterStatistics(environment.writerStatistics) }
}

extension JobRepository {
    /// The LMDB library's version string, e.g. "LMDB 0.9.24: (July 24, 2019)".
    public static var storageLibraryVersion: String { Environment.libraryVersion }
}
