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

    @Test("a scheduler process killed with jobs in flight, three times: a scheduler here rescues and finishes the rest; every job ends succeeded, none left running, the store verifies")
    func schedulerKilledWithJobsInFlight() async throws {
        try await withStore { store, directory in
            let total = 2_000
            let jobs = try await store.insert((0..<total).map { NewJob(name: "flight-\($0)", queue: "flight") })
            // Each worker is killed once it has started 100–300 jobs (its output says so), watched
            // from a thread of its own: under a sanitizer the concurrency pool is so busy that a
            // timed sleep overshot, and the worker finished everything before the kill (awaited,
            // so the wait holds none of the pool's threads).
            let (path, outputs) = (directory.path, (0..<3).map { directory.sub("killed-\($0).out") })
            let (started, cut) = try await onOwnThread(timeout: 300) { () throws -> (Int, Int) in
                var (started, cut) = (0, 0)
                for file in outputs {
                    let child = Process()
                    child.executableURL = try helperExecutable("JobStoreTestHelper")
                    child.arguments = ["work", path, "flight", "500", "20"]  // 500 ms leases, jobs of up to 20 ms
                    FileManager.default.createFile(atPath: file, contents: nil)
                    child.standardOutput = FileHandle(forWritingAtPath: file)
                    try child.run()
                    let lines = { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").count }
                    let target = Int.random(in: 100...300)
                    while child.isRunning && lines() < target { usleep(2_000) }
                    kill(child.processIdentifier, SIGKILL)
                    child.waitUntilExit()
                    if child.terminationReason == .uncaughtSignal { cut += 1 }
                    started += lines()
                    #expect(try store.verify().isEmpty, "after kill \(cut)")
                }
                return (started, cut)
            }
            #expect(cut == 3, "every worker was killed mid-run")
            // Runs were cut short (a job killed in its handler runs again, so `started` may pass
            // the total) and work remained for the scheduler below.
            let succeeded = try store.count(.succeeded)
            #expect(started > 0 && succeeded < total, "the kills came while jobs remained: \(started) started, \(succeeded) succeeded")
            // Here: the rescue finds the killed workers' expired leases; every job is finished.
            var options = testOptions(concurrency: 8)
            options.rescueInterval = .milliseconds(200)
            var scheduler = Scheduler(backend: store, options: options)
            scheduler.handle(queue: "flight") { _ in }
            try await running(scheduler) {
                try await waitUntil(store, "every job succeeded") { try store.count(.succeeded) == total }
            }
            #expect(try store.count(.running) == 0 && store.count(.pending) == 0)
            for job in jobs { #expect(try store.job(job.id)?.state == .succeeded) }
            try expectConsistent(store)
        }
    }
}
