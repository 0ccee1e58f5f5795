import Foundation
import Testing

@testable import LMDB
import TestSupport

@Suite("Crash consistency: a writer killed with SIGKILL loses no acknowledged commit", .serialized)
struct CrashTests {
    /// Starts the helper's write loop, lets it commit for a while, kills it with SIGKILL and
    /// returns the last key it acknowledged (printed only after the commit returned).
    func killWriter(at path: String, after seconds: Double) throws -> UInt64? {
        try killedChildOutput("LMDBTestHelper", ["write-loop", path], after: seconds).last.flatMap { UInt64($0) }
    }

    @Test("killed at random moments mid-write, reopened intact with every acknowledged batch present")
    func killedWriter() throws {
        let directory = TemporaryDirectory()
        var acknowledgedRounds = 0
        for round in 0..<5 {
            let path = directory.sub("round-\(round)")
            let acknowledged = try killWriter(at: path, after: Double.random(in: 0.1...0.6))
            if acknowledged != nil { acknowledgedRounds += 1 }
            // Reopen: the open clears the dead writer's reader slot; its write lock is released.
            let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 1 << 20), databases: [numbersDefinition])
            defer { env.close() }
            let numbers = try env.database(numbersDefinition)
            let keys = try env.read { txn in try txn.entries(numbers).map(\.key) }
            // Batches of 10 commit whole or not at all, from key 0 up without gaps.
            #expect(keys.count % 10 == 0)
            #expect(keys == Array(0..<UInt64(keys.count)))
            if let acknowledged {
                #expect(UInt64(keys.count) > acknowledged, "acknowledged key \(acknowledged) is missing")
            }
            try env.read { txn throws in
                for key in keys where key % 97 == 0 {
                    let value = try #require(try txn.get(numbers, key))
                    #expect(value.count == 308 && value.prefix(300).allSatisfy { $0 == 0xAB })
                }
            }
            // The dead process's write lock is free: this process can write.
            try env.write { txn in try txn.put(numbers, UInt64.max, [1]) }
        }
        #expect(acknowledgedRounds > 0, "the child never acknowledged a commit")
    }
}
