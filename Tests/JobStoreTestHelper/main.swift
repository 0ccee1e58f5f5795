// A child process for the JobStore tests: inserts batches while the test kills it, or changes
// a job of a store the test has open (to prove the cache notices another process's writes).
import ChildProcess
import JobScheduler
import JobStore

#if canImport(Glibc)
import Glibc
#endif

func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    let text = "JobStoreTestHelper: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

exitWhenOrphaned()
let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: JobStoreTestHelper (insert-loop PATH [PAUSE_MS] | mixed-loop PATH | pipeline-loop PATH | insert PATH NAME QUEUE | pause PATH QUEUE | resume PATH QUEUE | claim-and-hang PATH COUNT LEASE_MS QUEUE | set-payload PATH ID TEXT)") }

do {
    var options = JobStoreOptions(mapSize: 1 << 20)
    // Every process opening a store must agree on write-mapping: the test says so to its helper.
    options.environment.writeMap = getenv("JOBSTORE_TEST_WRITE_MAP") != nil
    let store = try JobRepository(path: arguments[2], options: options)
    switch arguments[1] {
    case "insert-loop":
        // Batches of 20 jobs, each batch also completing a claimed job; prints the last id of
        // every committed batch. Killed with SIGKILL at a random moment. An optional pause (ms)
        // between batches bounds the rate.
        let pause = arguments.count > 3 ? UInt32(arguments[3]) ?? 0 : 0
        var batch = 0
        while true {
            let jobs = (0..<20).map { i in
                NewJob(name: "job-\(batch)-\(i)", queue: "q\(i % 3)", payload: Array(repeating: UInt8(i), count: 200), priority: UInt8(i % 5))
            }
            let owner = OwnerToken.random()
            let inserted = try store.write { txn -> [Job] in
                let inserted = try txn.insert(jobs)
                for job in try txn.claim(limit: 2, lease: .seconds(60), owner: owner) {
                    try txn.complete(job.id, owner: owner)
                }
                return inserted
            }
            say(inserted[inserted.count - 1].id.description)
            batch += 1
            if pause > 0 { usleep(pause * 1000) }
        }
    case "mixed-loop":
        // A random mix of every kind of write, each printed once committed ("job ID STATE",
        // "pipeline ID"): single inserts, batches, claims completed, claims failed and retried,
        // pipelines enqueued and their steps run, cancels, and prunes of succeeded jobs (framed by
        // "prune-begin" and "prune-end", so a pruned job's absence is accounted for). Killed with
        // SIGKILL at a random moment.
        /// Claims and completes up to `limit` jobs of `queue` in one transaction, printing each.
        func completeSome(queue: String, limit: Int, owner: OwnerToken) throws {
            let done = try store.write { txn in
                try txn.claim(queue: queue, limit: limit, lease: .seconds(60), owner: owner).map { try txn.complete($0.id, owner: owner) }
            }
            for job in done { say("job \(job.id) succeeded") }
        }
        while true {
            let owner = OwnerToken.random()
            switch Int.random(in: 0..<8) {
            case 0:
                let job = try store.insert(NewJob(name: "single", queue: "m", payload: Array(repeating: 7, count: Int.random(in: 0...2000))))
                say("job \(job.id) pending")
            case 1:
                for job in try store.insert((0..<10).map { NewJob(name: "batch-\($0)", queue: "m", priority: UInt8($0)) }) {
                    say("job \(job.id) pending")
                }
            case 2:
                try completeSome(queue: "m", limit: 3, owner: owner)
            case 3:
                if let job = try store.claim(queue: "m", lease: .seconds(60), owner: owner).first {
                    let retried = try store.fail(job.id, owner: owner, error: "flaky", retryAt: .now)
                    say("job \(retried.id) \(retried.state)")
                }
            case 4:
                let pipeline = try store.enqueue(PipelineDefinition(name: "mixed", steps: [
                    PipelineStep("a", job: NewJob(name: "a", queue: "p")),
                    PipelineStep("b", job: NewJob(name: "b", queue: "p"), dependsOn: ["a"]),
                    PipelineStep("c", job: NewJob(name: "c", queue: "p"), dependsOn: ["a"]),
                ]))
                say("pipeline \(pipeline.id)")
            case 5:
                try completeSome(queue: "p", limit: 2, owner: owner)
            case 6:
                if let job = try store.jobs(in: .pending, limit: 1).jobs.first, job.pipeline == nil {
                    say("job \(try store.cancel(job.id).id) cancelled")
                }
            default:
                say("prune-begin")
                try store.prune(state: .succeeded, finishedBefore: .now.adding(.seconds(1)))
                say("prune-end")
            }
        }
    case "pipeline-loop":
        // Enqueues pipelines of 60 steps (a root, 50 in parallel, a chain of 9 after them) and
        // runs their steps a few per transaction — some fail for good, cascading — printing each
        // enqueued pipeline's id once committed. Killed with SIGKILL at a random moment.
        var round = 0
        while true {
            var steps = [PipelineStep("root", job: NewJob(name: "root", maxAttempts: 1))]
            steps += (0..<50).map { PipelineStep("wide-\($0)", job: NewJob(name: "wide", maxAttempts: 1), dependsOn: ["root"]) }
            steps += (0..<9).map { n in
                PipelineStep("chain-\(n)", job: NewJob(name: "chain", maxAttempts: 1), dependsOn: n == 0 ? (0..<50).map { "wide-\($0)" } : ["chain-\(n - 1)"])
            }
            let pipeline = try store.enqueue(PipelineDefinition(name: "crash-\(round)", steps: steps))
            say(pipeline.id.description)
            let owner = OwnerToken.random()
            var claimed = 0
            repeat {
                claimed = try store.write { txn -> Int in
                    let jobs = try txn.claim(limit: 7, lease: .seconds(60), owner: owner)
                    for job in jobs {
                        if job.id.low % 23 == 0 {
                            try txn.fail(job.id, owner: owner, error: "unlucky", retryAt: nil)
                        } else {
                            try txn.complete(job.id, owner: owner)
                        }
                    }
                    return jobs.count
                }
            } while claimed > 0
            round += 1
        }
    case "insert":
        // insert PATH NAME QUEUE: one pending job, from another process.
        guard arguments.count == 5 else { fail("insert needs NAME and QUEUE") }
        let job = try store.insert(NewJob(name: arguments[3], queue: arguments[4]))
        store.close()
        say(job.id.description)
    case "schedule":
        // schedule PATH NAME INTERVAL_MS COUNT: runs a scheduler whose only work is a periodic job
        // every INTERVAL_MS (its jobs in queue "ticks"), until the schedule's last tick is COUNT
        // ticks past the first one this process saw and the queue holds at least COUNT jobs (on a
        // loaded host both schedulers can miss ticks, which are then run once, not each); prints
        // "done".
        guard arguments.count == 6, let interval = Int64(arguments[4]), let count = Int64(arguments[5]) else {
            fail("schedule needs NAME, INTERVAL_MS and COUNT")
        }
        var scheduler = Scheduler(backend: store)
        let queue = "ticks"
        try scheduler.schedule(arguments[3], every: .milliseconds(interval), job: NewJob(name: "tick", queue: queue))
        let service = Task { try await scheduler.run() }
        let start = Timestamp.now.microseconds
        while true {
            try await Task.sleep(for: .milliseconds(interval))
            if let last = try store.schedules().first(where: { $0.name == arguments[3] })?.lastTick?.microseconds,
                last - start >= count * interval * 1000,
                try store.queueCounts()[queue, default: [:]].values.reduce(0, +) >= count
            {
                break
            }
        }
        service.cancel()
        try await service.value
        store.close()
        say("done")
    case "claim-loop":
        // claim-loop PATH QUEUE MILLISECONDS: claims (and completes) jobs of QUEUE one at a time
        // as fast as it can for MILLISECONDS, printing each claim's time (µs); then "done".
        guard arguments.count == 5, let milliseconds = Int64(arguments[4]) else { fail("claim-loop needs QUEUE and MILLISECONDS") }
        let end = Timestamp.now.adding(.milliseconds(milliseconds))
        let owner = OwnerToken.random()
        while Timestamp.now < end {
            for job in try store.claim(queue: arguments[3], lease: .seconds(60), owner: owner) {
                say("\(job.updatedAt.microseconds)")
                try store.complete(job.id, owner: owner)
            }
        }
        store.close()
        say("done")
    case "work":
        // work PATH QUEUE [LEASE_MS JOB_MS]: runs a scheduler (4 handlers) on QUEUE, printing the
        // id of each job it runs, until the store has no pending or running job of the queue;
        // then "done". With LEASE_MS and JOB_MS: leases that long, and each job takes up to
        // JOB_MS (at random), so that a kill finds jobs in flight.
        guard arguments.count == 4 || arguments.count == 6 else { fail("work needs QUEUE [LEASE_MS JOB_MS]") }
        let queue = arguments[3]
        let lease = arguments.count == 6 ? Int(arguments[4]).map { Duration.milliseconds($0) } : nil
        let jobMilliseconds = arguments.count == 6 ? Int(arguments[5]) ?? 0 : 0
        var options = SchedulerOptions(maxConcurrency: 4, prefetch: 8)
        if let lease { options.lease = lease }
        var scheduler = Scheduler(backend: store, options: options)
        scheduler.handle(queue: queue) { context in
            say(context.job.id.description)
            if jobMilliseconds > 0 { try await Task.sleep(for: .milliseconds(Int.random(in: 0...jobMilliseconds))) }
        }
        let service = Task { try await scheduler.run() }
        while true {
            try await Task.sleep(for: .milliseconds(50))
            let counts = try store.queueCounts()[queue] ?? [:]
            if (counts[.pending] ?? 0) + (counts[.running] ?? 0) == 0 { break }
        }
        service.cancel()
        try await service.value
        store.close()
        say("done")
    case "pause", "resume":
        // pause|resume PATH QUEUE, from another process.
        guard arguments.count == 4 else { fail("\(arguments[1]) needs QUEUE") }
        if arguments[1] == "pause" { try store.pause(queue: arguments[3]) } else { try store.resume(queue: arguments[3]) }
        store.close()
        say("ok")
    case "claim-and-hang":
        // claim-and-hang PATH COUNT LEASE_MS QUEUE: claims jobs under a short lease, prints their
        // ids, then hangs holding them (a worker that stopped) until it is killed.
        guard arguments.count == 6, let count = Int(arguments[3]), let lease = Int64(arguments[4]) else {
            fail("claim-and-hang needs COUNT, LEASE_MS and QUEUE")
        }
        let claimed = try store.claim(queue: arguments[5], limit: count, lease: .milliseconds(lease), owner: .random())
        for job in claimed { say(job.id.description) }
        say("claimed")
        while true { sleep(60) }
    case "set-payload":
        guard arguments.count == 5 else { fail("set-payload needs ID and TEXT") }
        let id = try JobID(parsing: arguments[3])
        let text = arguments[4]
        try store.update(id) { job in job.payload = Array(text.utf8) }
        store.close()
        say("ok")
    default:
        fail("unknown command \(arguments[1])")
    }
} catch {
    fail("\(error)")
}
