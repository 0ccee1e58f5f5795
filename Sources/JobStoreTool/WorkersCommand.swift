import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore workers PATH`: the running schedulers and the jobs their handlers run.
struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the running schedulers (host, pid, since when, handlers busy) and the jobs their handlers run, from their heartbeats.",
        discussion: """
            Each scheduler writes its heartbeat every few seconds (SchedulerOptions.heartbeatInterval) and deletes it \
            when it stops. One that missed three heartbeats is shown as gone: it died or stalls, and its jobs are \
            rescued when their leases expire. A gone scheduler's record is deleted after an hour by another's heartbeat.
            """)

    @OptionGroup var store: StoreOptions
    @Flag(help: "Print times in UTC instead of relative to now (\"3m ago\").")
    var utc = false

    struct Output: Encodable {
        struct Running: Encodable {
            var id, queue, name: String
            var since: Int64
            var sinceISO: String
            enum CodingKeys: String, CodingKey { case id, queue, name, since, sinceISO = "since_iso" }
        }
        var id, host: String
        var pid: Int32
        var startedAt, beatAt, intervalUs: Int64
        var startedAtISO, beatAtISO: String
        var gone: Bool
        var concurrency: Int
        var queues: [String]
        var running: [Running]
        enum CodingKeys: String, CodingKey {
            case id, host, pid, gone, concurrency, queues, running
            case startedAt = "started_at", beatAt = "beat_at", intervalUs = "interval_us", startedAtISO = "started_at_iso", beatAtISO = "beat_at_iso"
        }
    }

    func run() async throws {
        let workers = try await OpenedStore.with(store) { try await $0.store.workers() }
        let now = Timestamp.now
        if store.json {
            try printJSON(workers.map { worker in
                Output(
                    id: worker.id.description, host: worker.host, pid: worker.pid, startedAt: worker.startedAt.microseconds,
                    beatAt: worker.beatAt.microseconds, intervalUs: worker.interval.wholeMicroseconds,
                    startedAtISO: worker.startedAt.iso, beatAtISO: worker.beatAt.iso, gone: worker.isGone(at: now), concurrency: worker.concurrency,
                    queues: worker.queues,
                    running: worker.running.map { .init(id: $0.id.description, queue: $0.queue, name: $0.name, since: $0.since.microseconds, sinceISO: $0.since.iso) })
            })
            return
        }
        guard !workers.isEmpty else {
            print("no scheduler is running (none has written a heartbeat in the last hour)")
            return
        }
        var table = Table("scheduler", "host", "pid", "started", "last beat", "busy", "queues")
        table.shrinkable = [6, 1]
        for worker in workers {
            let beat = worker.isGone(at: now) ? "GONE, \(shown(worker.beatAt, utc: utc, now: now))" : shown(worker.beatAt, utc: utc, now: now)
            table.add([
                String(worker.id.description.prefix(8)), worker.host, "\(worker.pid)", shown(worker.startedAt, utc: utc, now: now), beat,
                "\(worker.running.count)/\(worker.concurrency)", worker.queues.joined(separator: ","),
            ])
        }
        print(table.render())
        let running = workers.flatMap { worker in worker.running.map { (worker, $0) } }
        if !running.isEmpty {
            print("")
            var jobs = Table("scheduler", "job", "queue", "name", "running for")
            jobs.shrinkable = [3]
            for (worker, job) in running {
                jobs.add([String(worker.id.description.prefix(8)), job.id.description, job.queue, job.name, Readable.duration(.microseconds(max(0, now.microseconds - job.since.microseconds)))])
            }
            print(jobs.render())
        }
        let gone = workers.filter { $0.isGone(at: now) }.count
        print("(\(workers.count - gone) running, \(gone) gone; \(running.count) job\(running.count == 1 ? "" : "s") running)")
    }
}
