import Foundation
import Testing

@testable import LMDB
import TestSupport

@Suite("Environment lifecycle: options checked, dropped environments, completion handlers")
struct LifecycleTests {
    @Test("options out of range are refused before LMDB sees them (a negative count used to trap)")
    func optionsOutOfRange() throws {
        try withTemporaryDirectory { directory in
            var cases: [(String, EnvironmentOptions)] = []
            var options = EnvironmentOptions()
            options.writer.maxBatchSize = 0  // set after init: the writer used to spin forever
            cases.append(("writer.maxBatchSize", options))
            options = EnvironmentOptions()
            options.maxReaders = -1
            cases.append(("maxReaders", options))
            options = EnvironmentOptions()
            options.maxDatabases = -3
            cases.append(("maxDatabases", options))
            options = EnvironmentOptions()
            options.mapSize = -1
            cases.append(("mapSize", options))
            options = EnvironmentOptions()
            options.withoutLock = true  // a writer without the lock file would corrupt the store
            cases.append(("withoutLock", options))
            for (field, options) in cases {
                #expect { try Environment(path: directory.path, options: options, databases: [items]) } throws: { error in
                    guard let error = error as? LMDBError else { return false }
                    return error.code == .invalidArgument && error.message.contains(field)
                }
            }
            // Nothing stays registered: a valid open works.
            try Environment(path: directory.path, databases: [items]).close()
        }
    }

    @Test("an environment dropped without close() reopens at once; one still referenced is alreadyOpen, saying so")
    func droppedEnvironment() async throws {
        try await withTemporaryDirectory { directory in
            do {
                let env = try Environment(path: directory.path, databases: [items])
                try await env.write { txn in try txn.put(env.database(items), "a", "1") }
            }
            let env = try Environment(path: directory.path, databases: [items])
            #expect(try env.read { try $0.get(env.database(items), "a") } == "1")
            #expect { try Environment(path: directory.path, databases: [items]) } throws: { error in
                guard let error = error as? LMDBError, error.code == .alreadyOpen else { return false }
                return error.message.contains("still referenced") && (error.hint ?? "").contains("close()")
            }
            env.close()
            // Closed but still referenced: the directory is free again.
            let reopened = try Environment(path: directory.path, databases: [items])
            defer { reopened.close() }
            #expect(try reopened.read { try $0.count(reopened.database(items)) } == 1)
        }
    }

    @Test("completion handlers: true after the commit, false on abort, a child's join its parent")
    func completionHandlers() throws {
        try withEnvironment(databases: [items]) { env in
            let db = try env.database(items)
            var events: [String] = []
            try env.write { txn in
                txn.onCompletion { events.append("outer \($0)") }
                try txn.put(db, "a", "1")
                try txn.nested { child in
                    child.onCompletion { events.append("committed child \($0)") }
                    try child.put(db, "b", "2")
                }
                struct Refused: Error {}
                _ = try? txn.nested { child in
                    child.onCompletion { events.append("aborted child \($0)") }
                    throw Refused()
                }
            }
            #expect(events == ["aborted child false", "outer true", "committed child true"])
            events = []
            struct Refused: Error {}
            _ = try? env.write { txn in
                txn.onCompletion { events.append("aborted \($0)") }
                throw Refused()
            }
            #expect(events == ["aborted false"])
        }
    }
}
