#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// LMDB 0.9's on-disk layout, as lmdb/mdb.c defines it (the parts the check reads).
private let pageHeaderSize = 16  // mp_pgno (8), mp_pad (2), mp_flags (2), mp_lower (2), mp_upper (2)
private let nodeHeaderSize = 8  // mn_lo, mn_hi, mn_flags, mn_ksize (2 each)
private let branchFlag: UInt16 = 0x01, leafFlag: UInt16 = 0x02, overflowFlag: UInt16 = 0x04, leaf2Flag: UInt16 = 0x20
private let bigDataFlag: UInt16 = 0x01, subDataFlag: UInt16 = 0x02, dupDataFlag: UInt16 = 0x04
private let subPageFlag: UInt16 = 0x40
private let duplicateSortFlag: UInt16 = 0x04  // MDB_DUPSORT, in a database record's md_flags
private let metaMagic: UInt32 = 0xBEEF_C0DE
private let noPage = UInt64.max  // P_INVALID: an empty database's root

extension Environment {
    /// Checks the structure of every page reachable from the current snapshot — page numbers,
    /// page kinds, bounds of every node, child and overflow page numbers — reading the data
    /// file itself, before LMDB follows any of it. LMDB keeps no checksums and trusts its pages:
    /// a damaged page pointer makes it read outside the map and crash the process. A `verify`
    /// that walks the databases through LMDB calls this first. Returns what is wrong (empty
    /// when every page is sound); a read transaction pins the snapshot meanwhile.
    public func checkPages() throws -> [String] {
        // A writer overwrites the snapshot's meta page two commits later. The check copies the
        // meta page's fields and then reads its transaction id again, so it walks the roots of
        // its own snapshot (whose pages stay pinned) or starts over with a new snapshot.
        let attempts = 50
        for _ in 0..<attempts {
            if let problems = try checkPagesOnce() { return problems }
        }
        throw LMDBError(
            code: .system, operation: "check the pages of data.mdb", path: path,
            message: "each of \(attempts) snapshots' meta pages was rewritten by later commits before it could be read; nothing was found wrong, nothing was checked. Run the check again, or while the store is written less")
    }

    /// A pause between the walks of the free-page list and the main database (tests only):
    /// widens the window in which writers rewrite the meta page the check began from.
    static let pageCheckPauseMicroseconds = Atomic<Int>(0)

    private func checkPagesOnce() throws -> [String]? {
        try read { txn in
            let snapshot = UInt64(try txn.id)
            let file = Glibc.open(path + "/data.mdb", O_RDONLY)
            guard file >= 0 else {
                throw LMDBError(returnCode: errno, operation: "open data.mdb to check its pages", path: path)
            }
            defer { Glibc.close(file) }
            let size = Int(lseek(file, 0, SEEK_END))
            guard size > 0 else { return ["\(path)/data.mdb is empty or cannot be read"] }
            guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, file, 0), map != MAP_FAILED else {
                throw LMDBError(returnCode: errno, operation: "mmap data.mdb to check its pages", path: path)
            }
            defer { munmap(map, size) }
            var walker = PageWalker(bytes: UnsafeRawBufferPointer(start: map, count: size))
            let pause = Environment.pageCheckPauseMicroseconds.load(ordering: .relaxed)
            guard walker.check(snapshot: snapshot, pause: pause) else { return nil }
            return walker.problems
        }
    }
}

/// Walks the page trees of one meta page, bounds-checking everything before following it.
private struct PageWalker {
    let bytes: UnsafeRawBufferPointer
    var pageSize = 4096
    var lastPage: UInt64 = 0
    var visited = Set<UInt64>()
    var problems: [String] = []

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    func u16(_ offset: Int) -> UInt16 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
    func u32(_ offset: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
    func u64(_ offset: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }

    mutating func problem(_ text: String) {
        if problems.count < 100 { problems.append(text) }
    }

    /// The meta page of `snapshot` (page 0 or 1), then the free-page and main databases' trees,
    /// and each named database's tree from its record in the main one. False when neither meta
    /// page holds the snapshot any more, or it was overwritten while its fields were read (by
    /// later commits). `pause` (tests): microseconds to sleep between the two trees.
    mutating func check(snapshot: UInt64, pause: Int) -> Bool {
        // Each meta page: the page header, then MDB_meta — magic (4), version (4), address (8),
        // map size (8), two MDB_db records (48 bytes each: pad (4) holds the page size in the
        // first, flags (2), depth (2), branch, leaf, overflow pages, entries, root (8 each)),
        // last page (8), transaction id (8).
        guard bytes.count >= 2 * pageHeaderSize + 136 else {
            problem("the data file is too short to hold its meta pages")
            return true
        }
        pageSize = Int(u32(pageHeaderSize + 24))  // the free-page database's md_pad
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0, bytes.count >= 2 * pageSize else {
            problem("the meta page gives a page size of \(pageSize) bytes")
            return true
        }
        let meta = [0, 1].map { $0 * pageSize + pageHeaderSize }.first { u32($0) == metaMagic && u64($0 + 128) == snapshot }
        guard let meta else { return false }
        // Every field the walk needs, copied before anything is walked; then the transaction id
        // again: if a commit rewrote the page meanwhile, the copy may mix two snapshots.
        let roots = (
            last: u64(meta + 120),
            free: (root: u64(meta + 24 + 40), depth: Int(u16(meta + 24 + 6))),
            main: (root: u64(meta + 72 + 40), depth: Int(u16(meta + 72 + 6))))
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard u64(meta + 128) == snapshot else { return false }
        lastPage = roots.last
        guard (Int(exactly: lastPage).map { ($0 + 1) * pageSize } ?? .max) <= bytes.count else {
            problem("the meta page's last page, \(lastPage), lies beyond the file's \(bytes.count / pageSize) pages")
            return true
        }
        tree(root: roots.free.root, database: "the free-page list", depth: roots.free.depth, duplicates: false)
        if pause > 0 { usleep(UInt32(pause)) }
        tree(root: roots.main.root, database: "the main database", depth: roots.main.depth, duplicates: false, holdsDatabases: true)
        return true
    }

    /// One database's tree from `root`: every branch's children, every leaf's nodes.
    mutating func tree(root: UInt64, database: String, depth: Int, duplicates: Bool, holdsDatabases: Bool = false) {
        guard root != noPage else { return }
        var level: [UInt64] = [root]
        var height = 0
        while !level.isEmpty, problems.isEmpty {
            height += 1
            var next: [UInt64] = []
            for number in level {
                guard let page = page(number, in: database) else { continue }
                let flags = u16(page + 10)
                if flags & branchFlag != 0 {
                    next += children(of: page, number, in: database)
                } else if flags & leafFlag != 0 {
                    leaf(page, number, in: database, duplicates: duplicates, holdsDatabases: holdsDatabases)
                } else {
                    problem("page \(number) of \(database) is neither a branch nor a leaf (flags 0x\(String(flags, radix: 16)))")
                }
            }
            level = next
        }
        if problems.isEmpty, height != depth { problem("\(database) is \(height) pages deep, its record says \(depth)") }
    }

    /// The byte offset of page `number` after checking that it is one: in the file, not seen
    /// before (no cycle, no page in two places), its header naming it.
    mutating func page(_ number: UInt64, in database: String) -> Int? {
        guard number >= 2, number <= lastPage else {
            problem("\(database) refers to page \(number), outside pages 2…\(lastPage)")
            return nil
        }
        guard visited.insert(number).inserted else {
            problem("page \(number) is reached twice in \(database)")
            return nil
        }
        let offset = Int(number) * pageSize
        guard u64(offset) == number else {
            problem("page \(number) of \(database) names itself \(u64(offset))")
            return nil
        }
        let lower = Int(u16(offset + 12)), upper = Int(u16(offset + 14))
        guard lower >= pageHeaderSize, lower <= upper, upper <= pageSize, (lower - pageHeaderSize) % 2 == 0 else {
            problem("page \(number) of \(database) has free space \(lower)…\(upper), impossible in a \(pageSize)-byte page")
            return nil
        }
        return offset
    }

    /// The nodes of a page, each checked to lie inside the page: (its offset, its header).
    mutating func nodes(_ page: Int, _ number: UInt64, in database: String) -> [(offset: Int, size: Int, flags: UInt16, keySize: Int)] {
        let count = (Int(u16(page + 12)) - pageHeaderSize) / 2
        let upper = Int(u16(page + 14))
        var result: [(Int, Int, UInt16, Int)] = []
        for index in 0..<count {
            let at = Int(u16(page + pageHeaderSize + 2 * index))
            guard at >= upper, at + nodeHeaderSize <= pageSize else {
                problem("node \(index) of page \(number) in \(database) starts at \(at), outside the page's nodes")
                return []
            }
            let node = page + at
            let size = Int(u16(node)) | Int(u16(node + 2)) << 16
            let keySize = Int(u16(node + 6))
            guard at + nodeHeaderSize + keySize <= pageSize else {
                problem("node \(index) of page \(number) in \(database) has a \(keySize)-byte key running past the page")
                return []
            }
            result.append((node, size, u16(node + 4), keySize))
        }
        return result
    }

    /// A branch page's children (a branch node's page number is mn_lo, mn_hi and mn_flags: 48 bits).
    mutating func children(of page: Int, _ number: UInt64, in database: String) -> [UInt64] {
        nodes(page, number, in: database).map { node in
            UInt64(u16(node.offset)) | UInt64(u16(node.offset + 2)) << 16 | UInt64(node.flags) << 32
        }
    }

    /// A leaf page's nodes: inline data inside the page, overflow pages in the file, and in the
    /// main database each named database's tree. A node's flags must fit its database: only a
    /// duplicate-sorted one has duplicates (a sub-page or a sub-database), only the main one
    /// names databases — LMDB would read a flipped flag's data as a page.
    mutating func leaf(_ page: Int, _ number: UInt64, in database: String, duplicates: Bool, holdsDatabases: Bool) {
        if u16(page + 10) & leaf2Flag != 0 { return }  // fixed-size keys, no node headers
        for node in nodes(page, number, in: database) {
            let data = node.offset + nodeHeaderSize + node.keySize
            let allowed: UInt16 = bigDataFlag | (duplicates ? dupDataFlag | subDataFlag : 0) | (holdsDatabases ? subDataFlag : 0)
            guard node.flags & ~allowed == 0, node.flags & bigDataFlag == 0 || node.flags & (dupDataFlag | subDataFlag) == 0 else {
                return problem("a node on page \(number) of \(database) has flags 0x\(String(node.flags, radix: 16)), impossible there")
            }
            if node.flags & bigDataFlag != 0 {
                guard data + 8 <= page + pageSize else { return problem("an overflow reference runs past page \(number) in \(database)") }
                let first = u64(data)
                let pages = (node.size + pageHeaderSize + pageSize - 1) / pageSize
                guard first >= 2, first + UInt64(pages) - 1 <= lastPage else {
                    return problem("a \(node.size)-byte value of \(database) on page \(number) points to overflow page \(first), outside the file")
                }
                guard u64(Int(first) * pageSize) == first, u16(Int(first) * pageSize + 10) & overflowFlag != 0 else {
                    return problem("overflow page \(first) of \(database) (from page \(number)) is not an overflow page")
                }
                for overflow in first..<first + UInt64(pages) where !visited.insert(overflow).inserted {
                    return problem("overflow page \(overflow) of \(database) is reached twice")
                }
                continue
            }
            guard data + node.size <= page + pageSize else {
                return problem("a \(node.size)-byte value on page \(number) of \(database) runs past the page")
            }
            if node.flags & subDataFlag != 0 {
                // A database record (48 bytes): a named database's, or a key's duplicates'.
                guard node.size == 48 else { return problem("a database record on page \(number) of \(database) is \(node.size) bytes, not 48") }
                let name = holdsDatabases && node.flags & dupDataFlag == 0
                    ? "database '\(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(node.offset + nodeHeaderSize)..<data]), as: UTF8.self))'"
                    : "the duplicates of a key in \(database)"
                tree(root: u64(data + 40), database: name, depth: Int(u16(data + 6)), duplicates: holdsDatabases && node.flags & dupDataFlag == 0 && u16(data + 4) & duplicateSortFlag != 0)
            } else if node.flags & dupDataFlag != 0 {
                // A key's few duplicates, inline: a sub-page of the node's size.
                let lower = Int(u16(data + 12)), upper = Int(u16(data + 14))
                guard node.size >= pageHeaderSize, u16(data + 10) & subPageFlag != 0, lower >= pageHeaderSize, lower <= upper, upper <= node.size else {
                    return problem("the duplicates of a key on page \(number) of \(database) are not a sound sub-page")
                }
            }
        }
    }
}
