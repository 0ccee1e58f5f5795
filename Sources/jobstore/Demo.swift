import ArgumentParser
import Foundation
import LMDB

/// `jobstore demo`: a tour of what exists so far — the LMDB layer.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a short demonstration in a temporary (or given) directory.")

    @Option(help: "Directory for the demo store (default: a new temporary directory, removed afterwards).")
    var dir: String?

    enum Schema {
        static let notes = DatabaseDefinition<UInt64Codec, StringCodec>(name: "notes")
        static let byTag = DatabaseDefinition<StringCodec, UInt64Codec>(name: "notes.by_tag", flags: [.duplicateSort, .duplicateFixed])
    }

    func run() async throws {
        let path = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-demo-\(UUID().uuidString)").path
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
        print("\(Environment.libraryVersion)")
        print("Opening an environment at \(path) with two named databases.")
        let env = try Environment(path: path, databases: [Schema.notes, Schema.byTag])
        defer { env.close() }
        let notes = try env.database(Schema.notes)
        let byTag = try env.database(Schema.byTag)

        // One write: a record and its index entry in one transaction. (In async code `write`
        // goes to the writer thread; synchronous code gets the synchronous `write`.)
        try await env.write { txn in
            try txn.put(notes, 1, "buy milk")
            try txn.put(byTag, "home", 1)
        }

        // 64 concurrent async writers: the writer thread commits them in shared transactions.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in UInt64(2)...65 {
                group.addTask {
                    try await env.write { txn in
                        try txn.put(notes, id, "note number \(id)")
                        try txn.put(byTag, id % 2 == 0 ? "even" : "odd", id)
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = env.writerStatistics
        print("\(stats.requests) async writes committed in \(stats.commits) transactions (largest batch \(stats.largestBatch)).")

        // A failing write rolls back entirely.
        struct Refused: Error {}
        do {
            try await env.write { txn in
                try txn.put(notes, 999, "never stored")
                throw Refused()
            }
        } catch is Refused {
            print("A write that threw left nothing behind: note 999 present = \(try env.read { try $0.contains(notes, 999) }).")
        }

        try env.read { txn in
            print("Notes 10…14:")
            for (id, text) in try txn.entries(notes, in: .between(10, 15)) { print("  \(id): \(text)") }
            var odd: [UInt64] = []
            try txn.withCursor(byTag) { cursor in
                var more = try cursor.seek(to: "odd")
                while more, odd.count < 5 {
                    odd.append(try cursor.value())
                    more = try cursor.nextDuplicate()
                }
            }
            print("First notes tagged 'odd' (a duplicateSort index): \(odd)")
            print("Entries: notes \(try txn.count(notes)), notes.by_tag \(try txn.count(byTag))")
        }
        let info = try env.info()
        print("Environment: map \(info.mapSize) bytes, \(info.usedBytes) used, last transaction \(info.lastTransactionID).")
        print("Named databases: \(try env.databaseNames().joined(separator: ", "))")
    }
}
