import CLMDB

/// Flags of a named database, fixed when it is created.
///
/// Each maps to the LMDB constant of the same meaning (`MDB_DUPSORT` is 0x04; a wrapper that
/// bound it to another constant silently created plain databases — SwiftLMDB's bug).
public struct DatabaseFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `MDB_REVERSEKEY`: keys compare as strings read from the end.
    public static let reverseKey = DatabaseFlags(rawValue: UInt32(MDB_REVERSEKEY))
    /// `MDB_DUPSORT`: a key may have many values, kept sorted. Values are then limited like keys
    /// (1…511 bytes).
    public static let duplicateSort = DatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    /// `MDB_INTEGERKEY`: keys are native-endian `UInt32` or `UInt64`, all the same size.
    public static let integerKey = DatabaseFlags(rawValue: UInt32(MDB_INTEGERKEY))
    /// `MDB_DUPFIXED` (with `duplicateSort`): every value has the same size.
    public static let duplicateFixed = DatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
    /// `MDB_INTEGERDUP` (with `duplicateSort`): values are native-endian integers.
    public static let integerDuplicates = DatabaseFlags(rawValue: UInt32(MDB_INTEGERDUP))
    /// `MDB_REVERSEDUP` (with `duplicateSort`): values compare as strings read from the end.
    public static let reverseDuplicates = DatabaseFlags(rawValue: UInt32(MDB_REVERSEDUP))

    var names: [String] {
        let all: [(DatabaseFlags, String)] = [
            (.reverseKey, "reverseKey"), (.duplicateSort, "duplicateSort"), (.integerKey, "integerKey"),
            (.duplicateFixed, "duplicateFixed"), (.integerDuplicates, "integerDuplicates"),
            (.reverseDuplicates, "reverseDuplicates"),
        ]
        return all.filter { contains($0.0) }.map(\.1)
    }
}

/// A named database declared once, as a constant: its name, flags and codecs.
///
/// ```swift
/// enum Schema {
///     static let users = DatabaseDefinition<StringCodec, BytesCodec>(name: "users")
///     static let byAge = DatabaseDefinition<UInt64Codec, StringCodec>(name: "users.by_age", flags: [.duplicateSort])
/// }
/// let env = try Environment(path: dir, databases: [Schema.users, Schema.byAge])
/// let users = try env.database(Schema.users)
/// ```
///
/// Every declared database is opened (and created, unless the environment is read-only) in one
/// committed transaction when the environment opens.
public struct DatabaseDefinition<Key: ByteCodec, Value: ByteCodec>: Sendable, AnyDatabaseDefinition {
    /// The database's name in the environment (shown by `mdb_stat -a`).
    public let name: String
    /// The flags it is created with.
    public let flags: DatabaseFlags

    /// Declares a database. `duplicateFixed`, `integerDuplicates` and `reverseDuplicates` need
    /// `duplicateSort`; that is checked when the environment opens.
    public init(name: String, flags: DatabaseFlags = []) {
        self.name = name
        self.flags = flags
    }
}

/// A database declaration of any codec types, for the list an environment opens.
public protocol AnyDatabaseDefinition: Sendable {
    /// The database's name.
    var name: String { get }
    /// The flags it is created with.
    var flags: DatabaseFlags { get }
}

/// An open named database: a small value holding LMDB's handle, used with a transaction.
///
/// Obtain one from ``Environment/database(_:)``. It belongs to the environment that opened it;
/// using it with a transaction of another environment is an ``LMDBError/Code/wrongEnvironment`` error.
public struct Database<Key: ByteCodec, Value: ByteCodec>: Sendable {
    /// The database's name.
    public let name: String
    /// The flags it was created with.
    public let flags: DatabaseFlags
    @usableFromInline let handle: MDB_dbi
    @usableFromInline let environmentID: UInt64

    var isDuplicateSort: Bool { flags.contains(.duplicateSort) }
    /// Keys in LMDB's default order (bytes, then the shorter first): neither `reverseKey` nor `integerKey`.
    var ordersBytewise: Bool { flags.isDisjoint(with: [.reverseKey, .integerKey]) }
}

/// The statistics of one database (`MDB_stat`).
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
    /// Entries (key–value pairs; every duplicate counts).
    public var entries: Int

    init(_ stat: MDB_stat) {
        pageSize = Int(stat.ms_psize)
        depth = Int(stat.ms_depth)
        branchPages = stat.ms_branch_pages
        leafPages = stat.ms_leaf_pages
        overflowPages = stat.ms_overflow_pages
        entries = stat.ms_entries
    }

    /// Bytes in all the database's pages.
    public var bytes: Int { (branchPages + leafPages + overflowPages) * pageSize }
}
