import Foundation
import JobScheduler
import JobStore
import Locking
import Testing
import TestSupport

/// The schedulers' heartbeats (who runs what), the same on every backend.
@Suite("Conformance: schedulers' heartbeats", .serialized)
struct WorkersTests {
    @Test("a running scheduler's heartbeat names its host, pid, queues and the jobs its handlers run; it is gone when the scheduler stops",
          arguments: Backend.available)
    func heartbeat(_ backend: Backend) async throws {
        try await withBackend(backend) { (store: any AdministrableStore, _) in
            let jobs = try await store.enqueue((0..<3).map { NewJob(name: "slow-\($0)", queue: "busy") })
            let release = Lock(false)
            var options = testOptions(concurrency: 2)
            options.heartbeatInterval = .milliseconds(50)
            try await withScheduler(store, options: options, ["busy": { _ in
                while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            }]) {
                try await waitUntil("a heartbeat with two running jobs") {
                    try await store.workers().first?.running.count == 2
                }
                let workers = try await store.workers()
                #expect(workers.count == 1)
                let worker = try #require(workers.first)
                #expect(worker.pid == getpid() && worker.host == ProcessInfo.processInfo.hostName && worker.concurrency == 2)
                #expect(worker.queues == ["busy"] && worker.interval == .milliseconds(50) && !worker.isGone(at: worker.beatAt))
                #expect(Set(worker.running.map(\.id)).isSubset(of: Set(jobs.map(\.id))))
                #expect(worker.running.allSatisfy { $0.queue == "busy" && $0.name.hasPrefix("slow-") && $0.since >= worker.startedAt })
                let beat = worker.beatAt
                try await waitUntil("another heartbeat") { try await store.workers().first.map { $0.beatAt > beat } == true }
                release.withLock { $0 = true }
                try await waitUntil("the jobs done") { try await store.count(.succeeded) == 3 }
                try await waitUntil("a heartbeat with no running job") { try await store.workers().first?.running.isEmpty == true }
            }
            #expect(try await store.workers().isEmpty)
        }
    }

    @Test("a heartbeat deletes the records of schedulers gone an hour, keeps the recently gone ones, and is bounded", arguments: Backend.available)
    func forgetting(_ backend: Backend) async throws {
        try await withBackend(backend) { (store: any AdministrableStore, _) in
            let now = Timestamp.now
            func record(_ id: OwnerToken, beat: Timestamp, host: String = "h", running: [WorkerRecord.RunningJob] = []) -> WorkerRecord {
                WorkerRecord(id: id, host: host, pid: 7, startedAt: beat, beatAt: beat, interval: .seconds(5), concurrency: 4, queues: ["q"], running: running)
            }
            let old = OwnerToken.random(), recent = OwnerToken.random(), live = OwnerToken.random()
            try await store.recordWorker(record(old, beat: now.adding(.seconds(-2 * 3600))))
            #expect(try await store.workers().map(\.id) == [old])  // nobody beat since: kept, and gone
            try await store.recordWorker(record(recent, beat: now.adding(.seconds(-60))))
            #expect(try await store.workers().map(\.id) == [recent])  // its beat forgot the one gone an hour before it
            let job = WorkerRecord.RunningJob(id: JobID(high: 1, low: 2), queue: "q", name: "n", since: now)
            try await store.recordWorker(record(live, beat: now, host: String(repeating: "ü", count: 200), running: [job]))
            let workers = try await store.workers()
            #expect(workers.map(\.id) == [recent, live])  // the longest-running first
            #expect(workers[0].isGone(at: now) && !workers[1].isGone(at: now))
            #expect(workers[1].host == String(repeating: "ü", count: 127) && workers[1].running == [job])  // 255 bytes at most, whole characters
            try await store.removeWorker(recent)
            try await store.removeWorker(OwnerToken.random())  // none: nothing
            #expect(try await store.workers().map(\.id) == [live])
        }
    }
}
