import Foundation
import JobStore
import Locking
import Testing
import TestSupport

/// The defects an operator met (issue "Operators first", 4–8 and 12), each tested as found.
@Suite("Operator defects: typos refused, pipelines deleted, history followed from now, top into a pipe", .serialized)
struct OperatorDefectTests {
    @Test("queues pause/limit of a queue the store does not know: refused, listing the known ones; --create sets it up")
    func unknownQueue() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let before = try dataFile(path)
        expectError(try jobstore("queues", "pause", path, "nosuchqueue"), 1, "has no queue 'nosuchqueue' (its queues: mail, reports)")
        expectError(try jobstore("queues", "limit", path, "nosuchqueue", "--starts", "5", "--per", "1m"), 1, "give --create")
        #expect(try dataFile(path) == before)
        #expect(!(try jobstore("queues", path).out.contains("nosuchqueue")))
        #expect(try jobstore("queues", "pause", path, "upcoming", "--create").out == "queue upcoming paused\n")
        #expect(try jobstore("queues", "limit", path, "later", "--starts", "5", "--per", "1h", "--create").status == 0)
        let list = try jobstore("queues", path).out
        #expect(list.contains("upcoming") && list.contains("5 per 1h"), "\(list)")
        // A known queue needs no --create; a bad name is still a usage error.
        #expect(try jobstore("queues", "pause", path, "mail").status == 0)
        expectError(try jobstore("queues", "pause", path, ""), 2, "is not a queue name")
    }

    @Test("a mistyped option is 'Unknown option' (exit 2, nothing changed), not another check's message")
    func unknownOptions() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let before = try dataFile(path)
        expectError(try jobstore("prune", path, "--bogus", "1h"), 2, "Unknown option '--bogus'")
        expectError(try jobstore("cancel", path, "--state", "pending", "--queu", "mail"), 2, "Unknown option '--queu'")
        expectError(try jobstore("retry", path, "--stat", "failed"), 2, "Unknown option '--stat'")
        expectError(try jobstore("queues", "pause", path, "mail", "--craete"), 2, "Unknown option '--craete'")
        #expect(try dataFile(path) == before)
        // The checks still run once the options are known.
        expectError(try jobstore("prune", path, "--older-than", "1h"), 2, "need --state")
    }

    @Test("a pipeline is deleted by id, with `delete` or `pipelines delete`: its steps' jobs go with it")
    func deletePipeline() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let (pipelines, stepJob) = try {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            let definition = PipelineDefinition(name: "release", steps: [
                PipelineStep("build", job: NewJob(name: "build", queue: "ci")),
                PipelineStep("test", job: NewJob(name: "test", queue: "ci"), dependsOn: ["build"]),
            ])
            let first = try store.enqueue(definition)
            let second = try store.enqueue(definition)
            let step = try #require(try store.pipelineDetails(first.id)?.jobs.first)
            return ([first.id, second.id], step)
        }()
        // A step's job alone is refused, pointing at the command that exists.
        let alone = try jobstore("delete", path, stepJob.id.description)
        #expect(alone.status == 1 && alone.err.contains("jobstore pipelines delete"))
        let viaDelete = try jobstore("delete", path, pipelines[0].description)
        #expect(viaDelete.status == 0 && viaDelete.out.contains("pipeline deleted"), "\(viaDelete.err)")
        let viaPipelines = try jobstore("pipelines", "delete", path, pipelines[1].description, "--json")
        #expect(viaPipelines.status == 0 && viaPipelines.out.contains("\"kind\":\"pipeline\""), "\(viaPipelines.err)")
        let stats = try json(jobstore("stats", path, "--json").out)
        #expect((stats["states"] as? [String: Int])?.values.reduce(0, +) == 0)
        #expect(try jobstore("pipelines", "list", path).out.contains("(0 pipelines)"))
        expectError(try jobstore("pipelines", "delete", path, pipelines[0].description), 1, "no job or pipeline")
        #expect(try jobstore("verify", path).status == 0)
    }

    @Test("jobs history --follow starts at the end, like tail -f; with --since it replays first")
    func followFromNow() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)  // a history of a few dozen events
        let process = Process()
        process.executableURL = try helperExecutable("jobstore")
        process.arguments = ["jobs", "history", path, "--follow", "--json"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // SIGKILL: a child spawned from a test's thread may inherit a mask that blocks SIGTERM.
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Said once it has read where the history ends (read with a deadline: a tool that
        // never says it must fail the test, not hang it).
        let said = Lock("")
        let heard = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let data = errors.fileHandleForReading.availableData
            said.withLock { $0 = String(decoding: data, as: UTF8.self) }
            heard.signal()
        }
        guard heard.wait(timeout: .now() + 120) == .success else {
            Issue.record("the tool never said it was following (it replayed the history instead?)")
            return
        }
        #expect(said.withLock { $0 }.contains("following: new events"), "\(said.withLock { $0 })")
        let inserted = try {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            return try store.insert(NewJob(name: "after-follow", queue: "mail"))
        }()
        let first = output.fileHandleForReading.availableData  // blocks until the tool writes
        let lines = String(decoding: first, as: UTF8.self).split(separator: "\n")
        let event = try json(String(try #require(lines.first)))
        #expect(event["job"] as? String == inserted.id.description, "the first line followed is the new job's, not the old history: \(lines.first ?? "")")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // --since replays, and --limit is honoured with --follow too.
        let replay = try run(
            URL(fileURLWithPath: "/usr/bin/timeout"),
            ["120", try helperExecutable("jobstore").path, "jobs", "history", path, "--follow", "--since", "1h", "--limit", "3", "--json"])
        #expect(replay.status == 0 && replay.out.split(separator: "\n").count == 3, "\(replay.out)")
    }

    @Test("import --dry-run of jobs already in the store: one summary, not an API hint per line; export --output keeps an existing file without --force")
    func importExportSafety() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let file = directory.sub("jobs.jsonl")
        #expect(try jobstore("export", path, "--output", file).status == 0)
        let dry = try jobstore("import", path, file, "--dry-run")
        #expect(dry.status == 1)
        #expect(dry.out.contains("0 jobs and 0 pipelines would be imported, 12 already in the store, 0 bad lines"), "\(dry.out)")
        #expect(dry.err.split(separator: "\n").count == 1 && dry.err.contains("12 jobs are already in \(path) (lines 1, 2, 3"), "\(dry.err)")
        #expect(!dry.err.contains("NewJob"))
        // The real import names the line and says what to do, without the API's hint either.
        let real = try jobstore("import", path, file)
        #expect(real.status == 1 && real.err.contains("line 1: a job with id") && real.err.contains("already in the store"), "\(real.err)")
        #expect(!real.err.contains("NewJob"))
        // An existing file is not replaced silently.
        let before = try String(contentsOfFile: file, encoding: .utf8)
        expectError(try jobstore("export", path, "--state", "pending", "--output", file), 2, "exists; give --force")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == before)
        #expect(try jobstore("export", path, "--state", "pending", "--output", file, "--force").status == 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8) != before)
    }

    @Test("export then import carries the queues' pauses and rate limits and the schedules (with their last tick)")
    func controlsRoundTrip() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let lastTick = Timestamp(microseconds: 1_790_000_000_000_000)
        do {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            try store.write { txn in
                try txn.pause(queue: "mail")
                try txn.setRateLimit(queue: "reports", starts: 5, per: .seconds(60))
                try txn.register(ScheduleRecord(
                    name: "nightly-report", timing: "0 3 * * *", timeZone: "Europe/Paris", queue: "reports", jobName: "report",
                    missedTicks: .runOnce, lastTick: lastTick, nextTick: Timestamp(microseconds: 1_800_000_000_000_000)))
            }
        }
        let file = directory.sub("all.jsonl")
        let exported = try jobstore("export", path, "--output", file)
        #expect(exported.status == 0 && exported.out.contains("12 jobs, 0 pipelines and 3 queue controls and schedules"), "\(exported.out)")
        let dry = try jobstore("import", directory.sub("copy"), file, "--create", "--dry-run")
        #expect(dry.status == 0 && dry.out.contains("12 jobs and 0 pipelines and 3 queue controls and schedules would be imported"), "\(dry.out) \(dry.err)")
        let imported = try jobstore("import", directory.sub("copy"), file, "--create")
        #expect(imported.status == 0 && imported.out.contains("imported 12 jobs and 3 queue controls or schedules"), "\(imported.out) \(imported.err)")
        func queues(_ store: String) throws -> [String: [String: Any]] {
            let list = try #require(try JSONSerialization.jsonObject(with: Data(jobstore("queues", store, "--json").out.utf8)) as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: list.map { ($0["name"] as? String ?? "", $0) })
        }
        let (original, copy) = (try queues(path), try queues(directory.sub("copy")))
        #expect(copy["mail"]?["paused"] as? Bool == true)
        #expect(copy["mail"]?["paused_at"] as? Int64 == original["mail"]?["paused_at"] as? Int64)
        let limit = copy["reports"]?["rate_limit"] as? [String: Any]
        #expect(limit?["starts"] as? Int == 5 && limit?["period_seconds"] as? Double == 60)
        let schedules = try #require(try JSONSerialization.jsonObject(with: Data(jobstore("schedules", directory.sub("copy"), "--json").out.utf8)) as? [[String: Any]])
        #expect(schedules.count == 1 && schedules.first?["name"] as? String == "nightly-report" && schedules.first?["time_zone"] as? String == "Europe/Paris")
        #expect(schedules.first?["last_tick"] as? Int64 == lastTick.microseconds)
        // Each job's timeline travels: the copy's starts with the original's, then its own
        // inserted event (by the tool).
        let source = try JobRepository(path: path, options: JobStoreOptions(readOnly: true))
        let copied = try JobRepository(path: directory.sub("copy"), options: JobStoreOptions(readOnly: true))
        var jobs = 0
        try source.forEachJob { job in
            jobs += 1
            let before = try source.events(of: job.id).events
            let after = try copied.events(of: job.id).events
            #expect(Array(after.dropLast()) == before, "\(job.name)")
            #expect(after.last?.kind == .inserted && after.last?.actor?.hasPrefix("jobstore tool") == true)
            return true
        }
        #expect(jobs == 12)
        source.close()
        copied.close()
        // A bad control line is named like a bad job line.
        let bad = try jobstore("import", directory.sub("bad"), "-", "--create", stdin: #"{"kind":"schedule","name":"x","timing":"0 3 * * *","time_zone":"UTC","queue":"q","job_name":"j","missed_ticks":"sometimes"}"# + "\n")
        expectError(bad, 1, "field 'missed_ticks' is 'sometimes'")
    }

    @Test("serve: a port in use is said plainly; writes on every interface get a warning about the token in clear text")
    func serveErrors() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let (first, port, _) = try startServe([path, "--port", "0"])
        defer {
            kill(first.processIdentifier, SIGKILL)  // a test thread's blocked SIGTERM is inherited
            first.waitUntilExit()
        }
        expectError(try jobstore("serve", path, "--port", port), 1, "port \(port) on 127.0.0.1 is in use by another program")
        let open = try jobstore("serve", path, "--host", "0.0.0.0", "--port", port, "--allow-writes")
        #expect(open.err.contains("warning: --allow-writes on 0.0.0.0") && open.err.contains("clear text"), "\(open.err)")
    }

    @Test("the history as an audit trail: a retry by the tool is 'retried' and names the tool; pausing and limiting a queue leave events")
    func auditTrail() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let jobs = try makeStore(path)
        let failed = try #require(jobs.values.first { $0.state == .failed })
        #expect(try jobstore("retry", path, failed.id.description).status == 0)
        #expect(try jobstore("queues", "pause", path, "mail").status == 0)
        #expect(try jobstore("queues", "limit", path, "reports", "--starts", "5", "--per", "1m").status == 0)
        let retried = try jobstore("jobs", "history", path, "--kind", "retried", "--json").out.split(separator: "\n").map { try json(String($0)) }
        #expect(retried.count == 1 && retried.first?["job"] as? String == failed.id.description, "\(retried)")
        let actor = try #require(retried.first?["actor"] as? String)
        #expect(actor.hasPrefix("jobstore tool (") && actor.contains("pid "), "\(actor)")
        let queueEvents = try jobstore("jobs", "history", path, "--kind", "queue-paused,queue-limited", "--json").out.split(separator: "\n").map { try json(String($0)) }
        #expect(queueEvents.map { $0["kind"] as? String } == ["queue-paused", "queue-limited"])
        #expect(queueEvents.map { $0["message"] as? String } == ["mail", "reports: 5 per 1m"])
        #expect(queueEvents.allSatisfy { $0["job"] == nil && ($0["actor"] as? String)?.hasPrefix("jobstore tool") == true })
        let text = try jobstore("jobs", "history", path, "--kind", "queue-paused").out
        #expect(text.contains("(queue)") && text.contains("queue-paused") && text.contains("mail; by jobstore tool"), "\(text)")
        #expect(try jobstore("jobs", "show", path, failed.id.description).out.contains("by jobstore tool"))
    }

    @Test("top into a pipe: each view arrives whole as it is drawn")
    func topIntoAPipe() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        for arguments in [["top", path, "--interval", "200ms", "--json"], ["top", path, "--interval", "200ms"]] {
            let process = Process()
            process.executableURL = try helperExecutable("jobstore")
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let first = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)  // blocks until the tool writes
            kill(process.processIdentifier, SIGKILL)  // a test thread's blocked SIGTERM is inherited
            process.waitUntilExit()
            #expect(first.hasSuffix("\n"), "a view cut mid-way: \(first.suffix(80))")
            if arguments.contains("--json") {
                for line in first.split(separator: "\n") { #expect((try? json(String(line))) != nil, "\(line)") }
            } else {
                #expect(first.contains("pending"), "\(first)")
            }
        }
    }
}
