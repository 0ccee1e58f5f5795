import Foundation
import JobScheduler
import JobStore
import Testing
import TestSupport

@Suite("Several processes on one store")
struct MultiProcessTests {
    @Test("two scheduler processes run every job exactly once; a reader meanwhile always sees a consistent snapshot")
    func twoSchedulersAndAReader() async throws {
        try await withStore { store, directory in
            let total = 3000
            let jobs = try await store.insert((0..<total).map { NewJob(name: "shared-\($0)", queue: "shared") })
            // Each worker's output goes to a file (a pipe would fill and block it before it is read).
            func worker(_ number: Int) throws -> (Process, String) {
                let child = Process()
                child.executableURL = try helperExecutable("JobStoreTestHelper")
                child.arguments = ["work", directory.path, "shared"]
                let file = directory.sub("worker-\(number).out")
                FileManager.default.createFile(atPath: file, contents: nil)
                child.standardOutput = FileHandle(forWritingAtPath: file)
                try child.run()
                return (child, file)
            }
            let workers = [try worker(1), try worker(2)]
            let started = ContinuousClock.now
            // The reader: every snapshot's counts add up to the jobs inserted, while both write.
            var snapshots = 0
            while workers.contains(where: { $0.0.isRunning }) {
                if ContinuousClock.now - started > .seconds(120) { throw TestFailure("the workers did not finish within 120 s (a hang)") }
                let counts = try store.counts()
                #expect(counts.values.reduce(0, +) == total, "a snapshot counted \(counts)")
                snapshots += 1
                try await Task.sleep(for: .milliseconds(5))
            }
            var ran: [String: Int] = [:]
            var perWorker: [Int] = []
            for (child, file) in workers {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                #expect(child.terminationStatus == 0 && text.hasSuffix("done\n"))
                let ids = text.split(separator: "\n").dropLast().map(String.init)
                perWorker.append(ids.count)
                for id in ids { ran[id, default: 0] += 1 }
            }
            #expect(ran.count == total && ran.values.allSatisfy { $0 == 1 }, "jobs run twice: \(ran.filter { $0.value > 1 }.count)")
            #expect(Set(ran.keys) == Set(jobs.map(\.id.description)))
            #expect(perWorker.allSatisfy { $0 > 0 }, "both processes ran jobs: \(perWorker)")
            #expect(snapshots > 0)
            #expect(try store.count(.succeeded) == total)
            try expectConsistent(store)
        }
    }
}
