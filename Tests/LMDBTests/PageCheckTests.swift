import Foundation
@testable import LMDB
import Synchronization
import Testing
import TestSupport

/// `checkPages()` (issue 11, "a flipped byte"): LMDB keeps no checksums and follows whatever a
/// page says — a damaged child page number makes it read outside the map and crash. The check
/// reads the file itself first.
@Suite("Page check: a damaged page is reported, not followed")
struct PageCheckTests {
    let values = DatabaseDefinition<BytesCodec, BytesCodec>(name: "values")
    let dups = DatabaseDefinition<BytesCodec, BytesCodec>(name: "dups", flags: [.duplicateSort])

    /// A store three levels deep, with overflow values and a duplicate-sorted database.
    func makeStore(_ path: String) throws {
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 64 << 20), databases: [values, dups])
        defer { env.close() }
        try env.write { txn in
            let db = try env.database(values)
            for n in 0..<20_000 { try txn.put(db, Array("key-\(n)".utf8), [UInt8](repeating: UInt8(n % 251), count: 120)) }
            for n in 0..<20 { try txn.put(db, Array("big-\(n)".utf8), [UInt8](repeating: 7, count: 10_000)) }  // overflow pages
            let dupsDB = try env.database(dups)
            for n in 0..<2_000 { try txn.put(dupsDB, Array("k\(n % 10)".utf8), Array("v\(n)".utf8)) }
        }
    }

    /// The pages of the file whose header names them and whose flags are `flags` exactly.
    func pages(_ data: Data, flags: UInt16) -> [Int] {
        stride(from: 2 * 4096, to: data.count, by: 4096).filter { offset in
            let number = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
            let pageFlags = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 10, as: UInt16.self) }
            return number == UInt64(offset / 4096) && pageFlags == flags
        }
    }

    /// Damages the store's file with `change`, then runs the check on it.
    func check(after change: (inout Data) throws -> Void) throws -> [String] {
        let directory = TemporaryDirectory()
        try makeStore(directory.path)
        let file = URL(fileURLWithPath: directory.path + "/data.mdb")
        var data = try Data(contentsOf: file)
        try change(&data)
        try data.write(to: file)
        let env = try Environment(path: directory.path, options: EnvironmentOptions(readOnly: true))
        defer { env.close() }
        return try env.checkPages()
    }

    @Test("beside a writer committing at full speed, every check of the sound store finds nothing")
    func liveWriter() throws {
        // Before the fix the check read the main database's root from the meta page after
        // walking the free-page list; two commits later that page holds a newer snapshot, whose
        // pages lie past the older snapshot's last page: "refers to page …, outside pages 2…".
        // The pause between the two walks makes that window wide (most checks failed with it).
        let directory = TemporaryDirectory()
        let env = try Environment(
            path: directory.path, options: EnvironmentOptions(mapSize: 256 << 20, durability: .noSync), databases: [values])
        defer { env.close() }
        let db = try env.database(values)
        try env.write { txn in
            for n in 0..<20_000 { try txn.put(db, Array("key-\(n)".utf8), [UInt8](repeating: UInt8(n % 251), count: 120)) }
        }
        Environment.pageCheckPauseMicroseconds.store(2_000, ordering: .relaxed)
        defer { Environment.pageCheckPauseMicroseconds.store(0, ordering: .relaxed) }
        let stop = Atomic<Bool>(false)
        let commits = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            var n = 20_000
            do {
                while !stop.load(ordering: .relaxed) {
                    try env.write { txn in
                        // New keys (the file grows: newer snapshots reach pages past older ones' last)
                        // and rewritten ones (pages freed and reused).
                        for _ in 0..<50 {
                            n += 1
                            try txn.put(db, Array("key-\(n)".utf8), [UInt8](repeating: 1, count: 120))
                            try txn.put(db, Array("key-\(n % 20_000)".utf8), [UInt8](repeating: 2, count: 120))
                        }
                    }
                    commits.add(1, ordering: .relaxed)
                }
            } catch {
                failure.withLock { $0 = "the writer failed: \(error)" }
            }
        }
        var findings: [String] = []
        for _ in 0..<40 { findings += try env.checkPages() }
        stop.store(true, ordering: .relaxed)
        done.wait()
        #expect(failure.withLock { $0 } == nil)
        #expect(findings.isEmpty, "\(findings.prefix(3))")
        #expect(commits.load(ordering: .relaxed) > 40, "the writer committed meanwhile")
    }

    @Test("a sound store: no finding (branches, leaves, overflow pages, named and duplicate-sorted databases all walked)")
    func sound() throws {
        #expect(try check { _ in }.isEmpty)
    }

    @Test("a branch page's child number pointing past the file: reported")
    func childOutsideTheFile() throws {
        let problems = try check { data in
            // Every branch page (some pages of the file are free, not reachable: damage them all).
            let branches = pages(data, flags: 0x01)
            try #require(!branches.isEmpty)
            for branch in branches {
                let firstNode = Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: branch + 16, as: UInt16.self) })
                data[branch + firstNode + 4] = 0x7F  // mn_flags: the top bits of the child's page number
            }
        }
        #expect(problems.contains { $0.contains("refers to page") && $0.contains("outside pages") }, "\(problems)")
    }

    @Test("a leaf page's bounds impossible, a node running past its page, a page naming another, a node flagged as duplicates: each reported")
    func damagedLeaf() throws {
        let bounds = try check { data in
            for leaf in pages(data, flags: 0x02) {
                data[leaf + 12] = 0xFF  // mp_lower beyond mp_upper
                data[leaf + 13] = 0x0F
            }
        }
        #expect(bounds.contains { $0.contains("impossible in a 4096-byte page") }, "\(bounds)")
        let node = try check { data in
            for leaf in pages(data, flags: 0x02) {
                let firstNode = Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: leaf + 16, as: UInt16.self) })
                data[leaf + firstNode + 1] = 0x7F  // mn_lo's high byte: a value far longer than the page
            }
        }
        #expect(node.contains { $0.contains("runs past the page") || $0.contains("overflow") }, "\(node)")
        let renamed = try check { data in
            for leaf in pages(data, flags: 0x02) { data[leaf] ^= 0x01 }  // mp_pgno
        }
        #expect(renamed.contains { $0.contains("names itself") }, "\(renamed)")
        let flagged = try check { data in
            for leaf in pages(data, flags: 0x02) {
                let firstNode = Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: leaf + 16, as: UInt16.self) })
                data[leaf + firstNode + 4] |= 0x04  // F_DUPDATA: LMDB would read the value as a sub-page
            }
        }
        #expect(flagged.contains { $0.contains("impossible there") || $0.contains("sub-page") }, "\(flagged)")
    }
}
