import Foundation
import JobStore
import LMDB
import Locking
import Testing
import TestSupport

func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// Expects a command to fail with `status` and `fragment` in its one-line error, without a crash.
func expectError(_ result: (status: Int32, out: String, err: String), _ status: Int32, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status == status, "status \(result.status): \(result.err)", sourceLocation: sourceLocation)
    #expect(result.err.contains(fragment), "stderr: \(result.err)", sourceLocation: sourceLocation)
    #expect(!result.err.contains("Fatal error") && !result.err.contains("Stack trace"), sourceLocation: sourceLocation)
}

/// A store with a few jobs in every interesting state; returns the jobs by name.
func makeStore(_ path: String) throws -> [String: Job] {
    let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
    defer { store.close() }
    var jobs: [String: Job] = [:]
    let base = Timestamp(microseconds: 1_700_000_000_000_000)
    for n in 0..<12 {
        let job = try store.insert(NewJob(
            name: "job-\(n)", queue: n % 2 == 0 ? "mail" : "reports", payload: Array("payload \(n)".utf8), priority: UInt8(n % 3),
            createdAt: base.adding(.seconds(n))))
        jobs[job.name] = job
    }
    let owner = OwnerToken.random()
    try store.write { txn in
        try txn.transition(jobs["job-0"]!.id, to: .running)
        try txn.transition(jobs["job-0"]!.id, to: .succeeded)
        try txn.cancel(jobs["job-1"]!.id)
        _ = try txn.update(jobs["job-2"]!.id) { $0.payload = [0, 1, 2, 0xFF] }
    }
    _ = try store.claim(queue: "reports", limit: 1, lease: .milliseconds(1), owner: owner)  // job-3 (priority 0) or another: stuck soon
    let failedOwner = OwnerToken.random()
    try store.write { txn in
        try txn.update(jobs["job-4"]!.id) { $0.maxAttempts = 1 }
    }
    if let claimed = try store.claim(queue: "mail", limit: 1, lease: .seconds(60), owner: failedOwner).first {
        try store.fail(claimed.id, owner: failedOwner, error: "smtp timeout", retryAt: nil)
    }
    for name in jobs.keys { jobs[name] = try store.job(jobs[name]!.id) }
    return jobs
}

/// A "release" pipeline (version 3) whose build failed for good: test and package cancelled,
/// lint pending. Returns it and the build's job.
func enqueueFailedRelease(_ store: JobRepository) throws -> (Pipeline, Job) {
    let pipeline = try store.enqueue(PipelineDefinition(name: "release", version: 3, steps: [
        PipelineStep("build", job: NewJob(name: "build", queue: "ci", maxAttempts: 1)),
        PipelineStep("test", job: NewJob(name: "test", queue: "ci"), dependsOn: ["build"]),
        PipelineStep("lint", job: NewJob(name: "lint", queue: "lint")),
        PipelineStep("package", job: NewJob(name: "package", queue: "ci"), dependsOn: ["test", "lint"]),
    ]))
    let owner = OwnerToken.random()
    let build = try #require(try store.claim(queue: "ci", lease: .seconds(60), owner: owner).first)
    try store.fail(build.id, owner: owner, error: "compiler crashed", retryAt: nil)
    return (pipeline, build)
}

@Suite("The jobstore admin tool", .serialized)
struct AdminToolTests {
    @Test("stats: table and JSON, counts per state and queue, every database")
    func stats() throws {
        let directory = TemporaryDirectory()
        _ = try makeStore(directory.path)
        let table = try jobstore("stats", directory.path)
        #expect(table.status == 0)
        #expect(table.out.contains("idx.state_created") && table.out.contains("last transaction"))
        let output = try jobstore("stats", directory.path, "--json")
        #expect(output.status == 0)
        let parsed = try json(output.out)
        let states = try #require(parsed["states"] as? [String: Int])
        #expect(states.values.reduce(0, +) == 12)
        #expect(states["succeeded"] == 1 && states["cancelled"] == 1)
        let databases = try #require(parsed["databases"] as? [[String: Any]])
        #expect(databases.contains { $0["name"] as? String == "jobs" && $0["entries"] as? Int == 12 })
        let queues = try #require(parsed["queues"] as? [String: [String: Int]])
        #expect(Set(queues.keys) == ["mail", "reports"])
        // Free pages as mdb_stat -f counts them; no other process reads.
        #expect(parsed["other_read_transactions"] as? Int == 0)
        let freePages = try #require(parsed["free_pages"] as? Int)
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/mdb_stat") {
            let mdbStat = Process()
            mdbStat.executableURL = URL(fileURLWithPath: "/usr/bin/mdb_stat")
            mdbStat.arguments = ["-f", directory.path]
            let pipe = Pipe()
            mdbStat.standardOutput = pipe
            try mdbStat.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            mdbStat.waitUntilExit()
            #expect(text.contains("Free pages: \(freePages)"), "mdb_stat -f says: \(text)")
        }
        #expect(table.out.contains("free pages") && table.out.contains("0 other read transactions now"))
    }

    @Test("jobs list: by state, queue and time, newest first, keyset paging; jobs show: every field")
    func listAndShow() throws {
        let directory = TemporaryDirectory()
        let jobs = try makeStore(directory.path)
        let page1 = try json(jobstore("jobs", "list", directory.path, "--state", "pending", "--limit", "3", "--json").out)
        let first = try #require(page1["jobs"] as? [[String: Any]])
        #expect(first.count == 3)
        let cursor = try #require(page1["next"] as? String)
        let page2 = try json(jobstore("jobs", "list", directory.path, "--state", "pending", "--limit", "50", "--after", cursor, "--json").out)
        let rest = try #require(page2["jobs"] as? [[String: Any]])
        let pendingCount = try JobRepository(path: directory.path, options: JobStoreOptions(readOnly: true)).count(.pending)
        #expect(first.count + rest.count == pendingCount)
        let mail = try json(jobstore("jobs", "list", directory.path, "--queue", "mail", "--newest-first", "--json").out)
        let mailJobs = try #require(mail["jobs"] as? [[String: Any]])
        #expect(mailJobs.allSatisfy { $0["queue"] as? String == "mail" })
        #expect((mailJobs.first?["name"] as? String) == "job-10")
        let window = try json(jobstore("jobs", "list", directory.path, "--since", "2023-11-14T22:13:22Z", "--until", "2023-11-14T22:13:25Z", "--json").out)
        #expect((window["jobs"] as? [[String: Any]])?.count == 3)
        let table = try jobstore("jobs", "list", directory.path, "--state", "cancelled")
        #expect(table.status == 0 && table.out.contains("job-1") && table.out.contains("(1 job)"))

        let text = try jobstore("jobs", "show", directory.path, jobs["job-5"]!.id.description)
        #expect(text.status == 0 && text.out.contains("payload 5") && text.out.contains("reports"))
        let binary = try jobstore("jobs", "show", directory.path, jobs["job-2"]!.id.description)
        #expect(binary.out.contains("hex") && binary.out.contains("00 01 02 ff"))
        let shown = try json(jobstore("jobs", "show", directory.path, jobs["job-1"]!.id.description, "--json").out)
        #expect(shown["state"] as? String == "cancelled" && shown["name"] as? String == "job-1")
        let failed = try #require(jobs.values.first { $0.state == .failed })
        #expect(try jobstore("jobs", "show", directory.path, failed.id.description).out.contains("smtp timeout"))
    }

    @Test("verify: exit 0 when clean; exit 1 listing the job ids when damaged")
    func verify() throws {
        let directory = TemporaryDirectory()
        let jobs = try makeStore(directory.path)
        let clean = try jobstore("verify", directory.path)
        #expect(clean.status == 0 && clean.out.hasPrefix("ok: 12 jobs"))
        // Damage: remove one index entry behind the store's back, with LMDB's own tool.
        let damaged = TemporaryDirectory()
        try FileManager.default.removeItem(atPath: damaged.path)
        try FileManager.default.copyItem(atPath: directory.path, toPath: damaged.path)
        // Damage it through LMDB itself, not through the store.
        let store = try Environment(path: damaged.path, databases: JobStore.Schema.all)
        try store.write { txn in
            let db = try store.database(JobStore.Schema.created)
            try txn.withCursor(db) { cursor in
                _ = try cursor.first()
                try cursor.deleteCurrent()
            }
        }
        store.close()
        let result = try jobstore("verify", damaged.path, "--json")
        #expect(result.status == 1)
        let problems = try #require(try json(result.out)["problems"] as? [[String: Any]])
        #expect(problems.count == 1)
        #expect(problems.first?["job"] as? String == jobs["job-0"]!.id.description)
    }

    @Test("backup (plain and compact) makes a store that verifies; a non-empty destination is refused")
    func backup() throws {
        let directory = TemporaryDirectory()
        _ = try makeStore(directory.sub("store"))
        for compact in [false, true] {
            let destination = directory.sub("backup-\(compact)")
            let result = compact ? try jobstore("backup", directory.sub("store"), destination, "--compact") : try jobstore("backup", directory.sub("store"), destination)
            #expect(result.status == 0, "\(result.err)")
            #expect(try jobstore("verify", destination).status == 0)
        }
        let refused = try jobstore("backup", directory.sub("store"), directory.sub("backup-true"))
        #expect(refused.status == 2 && refused.err.contains("not empty"))
    }

    @Test("export then import: the same jobs; import reports each committed batch; a bad line stops with what is safe")
    func exportImport() throws {
        let directory = TemporaryDirectory()
        _ = try makeStore(directory.sub("source"))
        let exported = try jobstore("export", directory.sub("source"))
        #expect(exported.status == 0)
        let lines = exported.out.split(separator: "\n")
        #expect(lines.count == 12)
        try exported.out.write(toFile: directory.sub("jobs.jsonl"), atomically: true, encoding: .utf8)
        let imported = try jobstore("import", directory.sub("copy"), directory.sub("jobs.jsonl"), "--batch-size", "5", "--create")
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.components(separatedBy: "committed").count - 1 == 3)  // 5 + 5 + 2
        #expect(imported.out.contains("committed 12 jobs, last id"))
        let original = try JobRepository(path: directory.sub("source"), options: JobStoreOptions(readOnly: true))
        let copy = try JobRepository(path: directory.sub("copy"), options: JobStoreOptions(readOnly: true))
        var a: [Job] = []
        var b: [Job] = []
        try original.forEachJob { a.append($0); return true }
        try copy.forEachJob { b.append($0); return true }
        #expect(a == b)
        #expect(try copy.verify().isEmpty)
        original.close()
        copy.close()
        #expect(try jobstore("export", directory.sub("source"), "--state", "cancelled").out.split(separator: "\n").count == 1)

        let broken = lines.prefix(7).joined(separator: "\n") + "\n{\"id\": \"nope\"}\n" + lines.suffix(2).joined(separator: "\n")
        let failed = try jobstore("import", directory.sub("partial"), "-", "--batch-size", "5", "--create", stdin: broken)
        #expect(failed.status == 1)
        #expect(failed.out.contains("committed 5 jobs"))
        #expect(failed.err.contains("line 8") && failed.err.contains("5 jobs were committed"))
        // Each bad line names its field or where its JSON breaks (Foundation alone says "not valid JSON").
        let line = lines[0]
        func set(_ field: String, _ value: String) -> String {
            line.replacingOccurrences(of: "\"\(field)\":[0-9]+", with: "\"\(field)\":\(value)", options: .regularExpression)
        }
        for (bad, fragment) in [
            (set("priority", "-1"), "field 'priority' is -1"),
            (set("max_attempts", "99999999"), "field 'max_attempts' is 99999999"),
            (set("max_attempts", "0"), "allows 0 attempts; it must allow at least 1"),
            (set("created_at", "1.5"), "field 'created_at' is 1.5"),
            (String(line.prefix(40)), "not valid JSON (Unexpected end of file"),
            (line + "\n" + line, "line 2: a job with id"),
        ] {
            let result = try jobstore("import", directory.sub("bad-\(fragment.count)"), "-", "--create", stdin: bad)
            expectError(result, 1, fragment)
        }

        // Streamed: the first batch is committed and reported while the input is still open.
        let process = Process()
        process.executableURL = try helperExecutable("jobstore")
        process.arguments = ["import", directory.sub("streamed"), "-", "--batch-size", "5", "--create", "--json"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data((lines.prefix(6).joined(separator: "\n") + "\n").utf8))
        let first = output.fileHandleForReading.availableData  // blocks until the tool writes
        let progress = try json(String(decoding: first, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "")
        #expect(progress["jobs"] as? Int == 5 && progress["last_id"] is String)
        input.fileHandleForWriting.write(Data((lines.dropFirst(6).joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        let rest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let done = try json(rest.split(separator: "\n").last.map(String.init) ?? "")
        #expect(done["done"] as? Bool == true && done["jobs"] as? Int == 12)
    }

    @Test("prune (dry run, then for real), requeue, cancel and retry")
    func maintenance() throws {
        let directory = TemporaryDirectory()
        let jobs = try makeStore(directory.path)
        let dry = try jobstore("prune", directory.path, "--state", "succeeded", "--older-than", "1d", "--dry-run")
        #expect(dry.status == 0 && dry.out.contains("would delete 1 succeeded job"))
        #expect(try jobstore("prune", directory.path, "--state", "succeeded", "--older-than", "1d").out.contains("deleted 1"))
        #expect(try jobstore("jobs", "show", directory.path, jobs["job-0"]!.id.description).status == 1)

        Thread.sleep(forTimeInterval: 0.01)  // the 1 ms lease of the claimed reports job has expired
        let stuck = try jobstore("requeue", directory.path, "--stuck")
        #expect(stuck.status == 0 && stuck.out.contains("requeued 1 stuck job"))
        let cancel = try jobstore("cancel", directory.path, jobs["job-6"]!.id.description, jobs["job-1"]!.id.description)
        #expect(cancel.status == 1)  // job-1 is already cancelled
        #expect(cancel.out.contains("cancelled, now cancelled") && cancel.err.contains("cannot move from cancelled to cancelled"))
        let retry = try jobstore("retry", directory.path, jobs["job-1"]!.id.description)
        #expect(retry.status == 0 && retry.out.contains("now pending"))
        let requeue = try jobstore("requeue", directory.path, jobs["job-7"]!.id.description, "--json")
        #expect(requeue.status == 0)
        #expect(try json(requeue.out)["state"] as? String == "pending")
        #expect(try jobstore("verify", directory.path).status == 0)
    }

    @Test("pipelines list/show (table, DAG, --dot, --json), stats per state, cancel and retry by pipeline id, export/import carry pipelines")
    func pipelines() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let (pipeline, buildJob) = try {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            return try enqueueFailedRelease(store)
        }()
        let id = pipeline.id.description

        let list = try jobstore("pipelines", "list", path)
        #expect(list.status == 0 && list.out.contains(id) && list.out.contains("release"))
        #expect(list.out.contains("0/4 ok, 1 failed, 2 cancelled"), "steps that ended otherwise are not 'done': \(list.out)")
        let listJSON = try json(jobstore("pipelines", "list", path, "--state", "running", "--json").out)
        #expect((listJSON["pipelines"] as? [[String: Any]])?.first?["id"] as? String == id)

        let show = try jobstore("pipelines", "show", path, id)
        #expect(show.status == 0)
        #expect(show.out.contains("layer 0") && show.out.contains("layer 2"))
        #expect(show.out.contains("✘ build [failed]") && show.out.contains("package [cancelled]  ◀─ test, lint"))
        let dot = try jobstore("pipelines", "show", path, id, "--dot")
        #expect(dot.out.hasPrefix("digraph") && dot.out.contains("s0 -> s1;") && dot.out.contains("s2 -> s3;"))
        let shown = try json(jobstore("pipelines", "show", path, id, "--json").out)
        #expect(shown["state"] as? String == "running" && (shown["steps"] as? [Any])?.count == 4)
        // Each step's last run, from its job's timeline: build ran (and failed); the others never started.
        let steps = try #require(shown["steps"] as? [[String: Any]])
        #expect(steps[0]["ran_us"] is Int && steps[0]["queued_us"] is Int && steps[1]["ran_us"] == nil)
        #expect(show.out.contains("queued") && (show.out.contains(" ms") || show.out.contains(" µs")))

        let jobShow = try jobstore("jobs", "show", path, buildJob.id.description)
        #expect(jobShow.out.contains("'release' v3") && jobShow.out.contains("step 0 'build'"))
        let stats = try json(jobstore("stats", path, "--json").out)
        #expect((stats["pipelines"] as? [String: Int])?["running"] == 1)
        #expect(stats["expired_leases"] as? Int == 0 && stats["longest_ready_wait_seconds"] is Double)

        // Bad input: a job id given as a pipeline id, an unknown id, a malformed one.
        let asJob = try jobstore("pipelines", "show", path, buildJob.id.description)
        #expect(asJob.status == 1 && asJob.err.contains("is a job, not a pipeline"))
        let unknown = try jobstore("pipelines", "show", path, "0190a5c4-1b2e-7000-8123-456789abcdef")
        #expect(unknown.status == 1 && unknown.err.contains("no pipeline"))
        let malformed = try jobstore("pipelines", "show", path, "release")
        #expect(malformed.status == 2 && malformed.err.contains("not a pipeline id"))
        #expect(try jobstore("pipelines", "list", path, "--state", "stuck").status == 2)
        let neither = try jobstore("cancel", path, "0190a5c4-1b2e-7000-8123-456789abcdef")
        #expect(neither.status == 1 && neither.err.contains("no job or pipeline"))

        // Export now (running, one failed step), import into a new store: the same pipeline.
        let exported = try jobstore("export", path)
        #expect(exported.status == 0 && exported.out.contains("\"kind\":\"pipeline\""))
        let imported = try jobstore("import", directory.sub("copy"), "-", "--create", stdin: exported.out)
        #expect(imported.status == 0 && imported.out.contains("imported 4 jobs and 1 pipeline"))
        #expect(try jobstore("verify", directory.sub("copy")).status == 0)
        let copied = try json(jobstore("pipelines", "show", directory.sub("copy"), id, "--json").out)
        // The same steps; their run times differ (an import starts each job's timeline anew).
        func withoutTimes(_ pipeline: [String: Any]) -> NSArray? {
            (pipeline["steps"] as? [[String: Any]])?.map { $0.filter { !$0.key.hasSuffix("_us") } } as NSArray?
        }
        #expect(withoutTimes(copied) == withoutTimes(shown) && withoutTimes(copied)?.count == 4)
        #expect(copied["failed_steps"] as? Int == 1 && copied["cancelled_steps"] as? Int == 2)

        // Retry by pipeline id re-runs the failed build and what it cancelled; cancel ends it.
        let retried = try jobstore("retry", path, id)
        #expect(retried.status == 0 && retried.out.contains("pipeline retried, now running"))
        let states = try json(jobstore("pipelines", "show", path, id, "--json").out)["steps"] as? [[String: Any]]
        #expect(states?.map { $0["state"] as? String } == ["pending", "waiting", "pending", "waiting"])
        let cancelled = try jobstore("cancel", path, id, "--json")
        #expect(cancelled.status == 0 && cancelled.out.contains("\"kind\":\"pipeline\"") && cancelled.out.contains("\"state\":\"cancelled\""))
        #expect(try jobstore("verify", path).out.contains("1 pipeline"))
    }

    @Test("demo: the scheduler runs a pipeline and the jobs to the end; the store it leaves verifies, with nothing unfinished")
    func demo() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("demo")
        let run = try jobstore("demo", "--dir", path, "--jobs", "200")
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.contains("all 213 jobs finished") && run.out.contains("layer 2") && run.out.contains("ok: 213 jobs and 2 pipelines"))
        let stats = try json(jobstore("stats", path, "--json").out)
        let states = try #require(stats["states"] as? [String: Int])
        #expect(states["pending"] == 0 && states["waiting"] == 0 && states["running"] == 0)
        #expect(states["failed"] == 1 && states["cancelled"] == 2)  // the nightly import's transform, and what it cancelled
        #expect((stats["pipelines"] as? [String: Int]) == ["running": 0, "succeeded": 1, "failed": 1, "cancelled": 0])
    }

    @Test("queues: list with counts, pause and resume (table and JSON); bad queue names refused")
    func queues() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let list = try jobstore("queues", path)
        #expect(list.status == 0 && list.out.contains("mail") && list.out.contains("reports") && list.out.contains("longest wait"))
        #expect(try jobstore("queues", "pause", path, "mail").out == "queue mail paused\n")
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(jobstore("queues", "list", path, "--json").out.utf8)) as? [[String: Any]])
        #expect(listed.first { $0["name"] as? String == "mail" }?["paused"] as? Bool == true)
        #expect(listed.first { $0["name"] as? String == "reports" }?["paused"] as? Bool == false)
        #expect(try jobstore("queues", "resume", path, "mail").status == 0)
        #expect(try jobstore("queues", "limit", path, "reports", "--starts", "10", "--per", "1m").out == "queue reports: at most 10 starts per 1m\n")
        #expect(try jobstore("queues", path).out.contains("10 per 1m (10 left)"))
        #expect(try jobstore("queues", "limit", path, "reports", "--starts", "0", "--per", "1m").status == 2)
        #expect(try jobstore("queues", "unlimit", path, "reports").out == "queue reports: rate limit removed\n")
        let bad = try jobstore("queues", "pause", path, "")
        #expect(bad.status == 2 && bad.err.contains("not a queue name"))
        #expect(try jobstore("verify", path).status == 0)
    }

    @Test("schedules: the periodic jobs registered in the store, table and JSON")
    func schedules() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        do {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            try store.write { txn in
                try txn.register(ScheduleRecord(
                    name: "nightly-report", timing: "0 3 * * *", timeZone: "Europe/Paris", queue: "reports", jobName: "report",
                    missedTicks: .runOnce, nextTick: Timestamp(microseconds: 1_800_000_000_000_000)))
            }
        }
        let table = try jobstore("schedules", path)
        #expect(table.status == 0 && table.out.contains("nightly-report") && table.out.contains("0 3 * * *") && table.out.contains("run-once"))
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(jobstore("schedules", path, "--json").out.utf8)) as? [[String: Any]])
        #expect(listed.first?["time_zone"] as? String == "Europe/Paris" && listed.first?["next_tick"] as? Int64 == 1_800_000_000_000_000)
    }

    @Test("operator papercuts: an exactly full page has no next cursor; impossible dates, empty ranges, a 0s refresh and a data.mdb path are usage errors; import needs --create for a new store and names the line of a duplicate")
    func papercuts() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let pending = try json(jobstore("jobs", "list", path, "--state", "pending", "--json").out)["jobs"] as? [Any]
        let count = try #require(pending?.count)
        let exact = try jobstore("jobs", "list", path, "--state", "pending", "--limit", "\(count)")
        #expect(exact.status == 0 && !exact.out.contains("next page"))
        #expect(try jobstore("jobs", "list", path, "--state", "pending", "--limit", "\(count - 1)").out.contains("next page"))
        expectError(try jobstore("jobs", "list", path, "--since", "2026-13-45"), 2, "not a real date")
        expectError(try jobstore("jobs", "list", path, "--since", "2026-11-24", "--until", "2026-11-23"), 2, "is not before")
        expectError(try jobstore("top", path, "--interval", "0s"), 2, "at least 100ms")
        expectError(try jobstore("stats", path + "/data.mdb"), 2, "give its directory")
        expectError(try jobstore("import", directory.sub("typo"), "-", stdin: ""), 2, "--create")
        #expect(!FileManager.default.fileExists(atPath: directory.sub("typo") + "/data.mdb"))
        let line = try jobstore("export", path).out.split(separator: "\n").first.map(String.init) ?? ""
        let duplicate = try jobstore("import", path, "-", "--batch-size", "1000", stdin: line + "\n")
        #expect(duplicate.status == 1 && duplicate.err.contains("line 1:") && duplicate.err.contains("already in the store"))
        // Typed JSON: counts are numbers, flags booleans.
        let pruned = try json(jobstore("prune", path, "--state", "cancelled", "--older-than", "0s", "--dry-run", "--json").out)
        #expect(pruned["would_delete"] as? Int == 1 && pruned["created_before"] is Int && pruned["created_before_iso"] is String)
        let first = try #require(pending?.first as? [String: Any])
        let cancelled = try json(jobstore("cancel", path, try #require(first["id"] as? String), "--json").out)
        #expect(cancelled["ok"] as? Bool == true)
        #expect(try jobstore("--version").out.hasPrefix("0."))
        // Shell completions complete state names.
        #expect(try jobstore("--generate-completion-script", "bash").out.contains("'waiting'$'\\n''pending'"))
        // stats shows the store's own map size, not the size the tool would have opened with.
        let big = directory.sub("big")
        try JobRepository(path: big, options: JobStoreOptions(mapSize: 1 << 32)).close()
        let environment = try json(jobstore("stats", big, "--json").out)["environment"] as? [String: Any]
        #expect(environment?["map_size"] as? Int == 1 << 32)
    }

    @Test("a store this user may not write: read commands read it without the lock file and warn; a write says whose it is; nothing changes")
    func unwritableStore() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        let tool = try helperExecutable("jobstore")
        var asOtherUser: ([String]) throws -> (status: Int32, out: String, err: String)
        if getuid() == 0 {
            // Root may write anything: run the tool as nobody instead.
            chmod(directory.path, 0o755)
            asOtherUser = { try run(URL(fileURLWithPath: "/usr/bin/setpriv"), ["--reuid=nobody", "--regid=nogroup", "--clear-groups", tool.path] + $0) }
        } else {
            for file in ["data.mdb", "lock.mdb"] { chmod(path + "/" + file, 0o444) }
            chmod(path, 0o555)
            asOtherUser = { try run(tool, $0) }
        }
        defer { chmod(path, 0o755) }
        let before = try jobstore("export", path).out
        let stats = try asOtherUser(["stats", path, "--json"])
        #expect(stats.status == 0 && stats.err.contains("read without LMDB's lock"), "\(stats.err)")
        #expect(try json(stats.out)["states"] != nil && json(stats.out)["other_read_transactions"] == nil)
        #expect(try asOtherUser(["stats", path]).out.contains("readers          unknown"))
        expectError(try asOtherUser(["readers", path]), 1, "reader table is kept in \(path)/lock.mdb")
        let list = try asOtherUser(["jobs", "list", path, "--state", "pending"])
        #expect(list.status == 0 && list.out.contains("pending"))
        #expect(try asOtherUser(["verify", path]).status == 0)
        expectError(try asOtherUser(["queues", "pause", path, "mail"]), 1, "cannot write to \(path)")
        expectError(try asOtherUser(["cancel", path, "--state", "pending"]), 1, "Run as the store's owner")
        #expect(try jobstore("export", path).out == before)
        #expect(try jobstore("verify", path).status == 0)
    }

    @Test("a corrupt record: jobs list and export skip it, name it on stderr, keep the rest, exit 1; export --output never leaves a partial file; delete --damaged removes it")
    func corruptRecordSkipped() throws {
        let directory = TemporaryDirectory()
        let jobs = try makeStore(directory.path)
        let victim = try #require(jobs["job-6"])
        let env = try Environment(path: directory.path, databases: JobStore.Schema.all)
        try env.write { txn in
            let records = try env.database(JobStore.Schema.jobs)
            try victim.id.withBytes { key in try txn.put(records, Array(key), [1, 2, 3]) }  // cut to 3 bytes
        }
        env.close()
        let list = try jobstore("jobs", "list", directory.path)
        #expect(list.status == 1 && list.err.contains(victim.id.description) && list.out.contains("(11 jobs)"))
        let output = directory.sub("export.jsonl")
        let export = try jobstore("export", directory.path, "--output", output)
        #expect(export.status == 1 && export.err.contains(victim.id.description) && export.err.contains("1 unreadable record was skipped"))
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 11)
        #expect(!FileManager.default.fileExists(atPath: output + ".partial"))

        // The way out: delete cannot read the record; delete --damaged removes it and what names it.
        expectError(try jobstore("delete", directory.path, victim.id.description), 1, "delete --damaged")
        expectError(try jobstore("delete", directory.path, "--damaged", "--state", "pending"), 2, "--damaged takes the ids")
        let readable = try #require(jobs["job-1"])
        expectError(try jobstore("delete", directory.path, "--damaged", readable.id.description), 1, "it is not damaged")
        let repaired = try jobstore("delete", directory.path, "--damaged", victim.id.description)
        #expect(repaired.status == 0 && repaired.out.contains("damaged record deleted"), "\(repaired.err)")
        #expect(try jobstore("verify", directory.path).status == 0)
        #expect(try jobstore("jobs", "list", directory.path).out.contains("(11 jobs)"))
    }

    @Test("bulk actions by filter (state, queue, name, time) with --dry-run first, ids from stdin, and delete")
    func bulkActions() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let jobs = try makeStore(path)
        func pending(_ queue: String) throws -> Int {
            try json(jobstore("stats", path, "--json").out)["queues"].flatMap { ($0 as? [String: [String: Int]])?[queue]?["pending"] } ?? 0
        }
        let mailPending = try pending("mail")
        let dry = try jobstore("cancel", path, "--state", "pending", "--queue", "mail", "--dry-run")
        #expect(dry.status == 0 && dry.out.contains("would cancel \(mailPending) jobs of the \(mailPending) selected, skip none"))
        #expect(try pending("mail") == mailPending)  // nothing changed
        let cancelled = try json(jobstore("cancel", path, "--state", "pending", "--queue", "mail", "--json").out)
        #expect(cancelled["changed"] as? Int == mailPending && cancelled["skipped"] as? Int == 0)
        #expect(try pending("mail") == 0)
        // Retry by name: one job; a filter that matches jobs the action does not apply to skips them.
        let retried = try jobstore("retry", path, "--name", "job-1")
        #expect(retried.status == 0 && retried.out.hasPrefix("retried 1 job"))
        let requeue = try jobstore("requeue", path, "--state", "succeeded")
        #expect(requeue.out.contains("skipped"))
        // Ids from stdin; then delete by filter.
        let viaStdin = try jobstore("cancel", path, "-", stdin: jobs["job-5"]!.id.description + "\n")
        #expect(viaStdin.status == 0 && viaStdin.out.contains("cancelled, now cancelled"))
        let deleted = try jobstore("delete", path, "--state", "cancelled")
        #expect(deleted.status == 0 && deleted.out.hasPrefix("deleted"))
        #expect(try json(jobstore("stats", path, "--json").out)["states"].flatMap { ($0 as? [String: Int])?["cancelled"] } == 0)
        expectError(try jobstore("delete", path), 2, "give job ids")
        expectError(try jobstore("cancel", path, "--state", "sleeping"), 2, "is not a state")
        #expect(try jobstore("verify", path).status == 0)
    }

    @Test("--json of every command: snake_case keys, an ISO 8601 copy beside every time in microseconds, every state's count present even when 0")
    func jsonConventions() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let jobs = try makeStore(path)
        do {
            let store = try JobRepository(path: path)
            defer { store.close() }
            _ = try store.insert(NewJob(name: "camel", queue: "camelCase"))
        }
        try jobstore("queues", "pause", path, "mail")
        let running = try #require(jobs.values.first { $0.name == "job-3" })
        let commands: [[String]] = [
            ["stats", path], ["jobs", "list", path], ["jobs", "show", path, running.id.description], ["jobs", "history", path, "--limit", "5"],
            ["queues", path], ["schedules", path], ["verify", path], ["readers", path], ["pipelines", "list", path], ["top", path, "--iterations", "1"],
            ["prune", path, "--state", "succeeded", "--older-than", "1d", "--history-before", "1d", "--dry-run"], ["export", path],
        ]
        var times = 0
        func check(_ value: Any, _ where: String) {
            if let array = value as? [Any] { for item in array { check(item, `where`) } }
            guard let object = value as? [String: Any] else { return }
            for (key, item) in object {
                #expect(key.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(`where`): key '\(key)' is not snake_case")
                let isTime = key.hasSuffix("_at") || key.hasSuffix("_before") || ["at", "until", "last_tick", "next_tick"].contains(key)
                if isTime, let microseconds = item as? Int {
                    times += 1
                    let iso = object[key + "_iso"] as? String
                    #expect(iso == Timestamp(microseconds: Int64(microseconds)).description, "\(`where`): \(key) has no ISO copy")
                }
                if key != "queues" || item is [Any] { check(item, `where` + "." + key) }  // stats' queues are keyed by name
            }
        }
        for command in commands {
            let result = try jobstore(command + (command[0] == "export" ? [] : ["--json"]))
            #expect(result.status == 0, "\(command): \(result.err)")
            let documents = ["export", "top"].contains(command[0]) || command.contains("history")
                ? result.out.split(separator: "\n").map(String.init) : [result.out]
            for document in documents {
                check(try JSONSerialization.jsonObject(with: Data(document.utf8)), command.joined(separator: " "))
            }
        }
        #expect(times > 20)
        let stats = try json(jobstore("stats", path, "--json").out)
        let camel = try #require((stats["queues"] as? [String: [String: Int]])?["camelCase"])
        #expect(camel.count == 6 && camel["failed"] == 0 && camel["pending"] == 1)
        #expect((stats["states"] as? [String: Int])?.count == 6 && (stats["pipelines"] as? [String: Int])?.count == 4)
        let queues = try #require(try JSONSerialization.jsonObject(with: Data(jobstore("queues", path, "--json").out.utf8)) as? [[String: Any]])
        #expect(queues.allSatisfy { ($0["counts"] as? [String: Int])?.count == 6 })
        #expect(queues.first { $0["name"] as? String == "mail" }?["paused_at_iso"] is String)
        // A time copied from the output is accepted back: µs, ISO with decimals, with an offset.
        let shown = try json(jobstore("jobs", "show", path, running.id.description, "--json").out)
        let micros = try #require(shown["created_at"] as? Int)
        let iso = try #require(shown["created_at_iso"] as? String)
        let local = Timestamp(microseconds: Int64(micros) + 5_400_000_000).description.replacingOccurrences(of: "Z", with: "+01:30")
        for since in ["\(micros)", iso, local] {
            let listed = try json(jobstore("jobs", "list", path, "--since", since, "--until", "\(micros + 1)", "--json").out)["jobs"] as? [[String: Any]]
            #expect(listed?.compactMap { $0["id"] as? String } == [running.id.description], "--since \(since)")
        }
        expectError(try jobstore("jobs", "list", path, "--since", "2026-11-23T10:00:00+24:00"), 2, "not a real date")
        expectError(try jobstore("jobs", "list", path, "--since", "2026-11-23T10:00:00"), 2, "an offset such as +01:00")
    }

    @Test("tables for people: relative times (--utc for UTC), states coloured on a terminal only, NO_COLOR respected, jobs list cut to the terminal's width")
    func tablesForPeople() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeStore(path)
        do {
            let store = try JobRepository(path: path)
            defer { store.close() }
            _ = try store.insert(NewJob(name: String(repeating: "long-name-", count: 8), queue: "mail", runAt: .now.adding(.seconds(3600))))
        }
        let piped = try jobstore("jobs", "list", path)
        #expect(piped.status == 0 && !piped.out.contains("\u{1B}["))
        #expect(piped.out.contains("d ago") && piped.out.contains("in 59m") && piped.out.contains(String(repeating: "long-name-", count: 8)))
        #expect(try jobstore("jobs", "list", path, "--utc").out.contains("2023-11-14T22:13:2"))
        // On a terminal (a pseudo-terminal of script(1), 100 columns wide).
        let script = URL(fileURLWithPath: "/usr/bin/script")
        guard FileManager.default.isExecutableFile(atPath: script.path) else { return }  // util-linux's script: in every Debian
        let tool = try helperExecutable("jobstore").path
        func onTerminal(_ command: String, noColor: Bool = false) throws -> [String] {
            let result = try run(script, ["-qec", "stty cols 100; \(noColor ? "NO_COLOR=1" : "env -u NO_COLOR") \(tool) \(command)", "/dev/null"])
            #expect(result.status == 0, "\(result.err)")
            return result.out.split(separator: "\r\n").map(String.init)
        }
        let lines = try onTerminal("jobs list \(path)")
        #expect(lines.contains { $0.contains("\u{1B}[33mpending\u{1B}[0m") })
        let visible = lines.map { $0.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression) }
        #expect(visible.allSatisfy { $0.count <= 100 }, "\(visible.map(\.count).max() ?? 0) columns")
        #expect(visible.contains { $0.contains("long-n") && $0.contains("…") }, "\(visible)")
        #expect(try onTerminal("jobs list \(path)", noColor: true).allSatisfy { !$0.contains("\u{1B}[") })
        // An 80-column terminal: every table fits, leaving out its least needed columns and saying so.
        try jobstore("queues", "limit", path, "mail", "--starts", "5", "--per", "1m")
        for command in ["jobs list", "queues"] {
            let result = try run(script, ["-qec", "stty cols 80; NO_COLOR=1 \(tool) \(command) \(path)", "/dev/null"])
            let lines = result.out.split(separator: "\r\n").map(String.init)
            #expect(lines.allSatisfy { $0.count <= 80 }, "\(command): \(lines.map(\.count).max() ?? 0) columns\n\(result.out)")
            #expect(lines.contains { $0.contains("left out to fit 80 columns") }, "\(command): \(result.out)")
        }
    }

    @Test("readers and top run on a store; top's JSON lines carry states, rates, queues and expired leases; on a terminal q quits and the screen comes back")
    func readersAndTop() throws {
        let directory = TemporaryDirectory()
        _ = try makeStore(directory.path)
        let readers = try jobstore("readers", directory.path, "--clear-stale")
        #expect(readers.status == 0 && readers.out.contains("cleared 0 stale"))
        let header = try #require(readers.out.split(separator: "\n").first)
        let row = try #require(readers.out.split(separator: "\n").dropFirst().first { $0.contains("this tool") })
        // Aligned: each row's snapshot starts under the header's (LMDB's own text was not).
        func column(_ line: Substring, _ text: String) -> Int? { line.range(of: text).map { line.distance(from: line.startIndex, to: $0.lowerBound) } }
        #expect(header.hasPrefix("pid") && column(header, "snapshot") != nil)
        #expect(column(header, "snapshot") == (column(row, "transaction") ?? column(row, "idle")), "\(readers.out)")
        let listed = try #require(try json(jobstore("readers", directory.path, "--json").out)["readers"] as? [[String: Any]])
        #expect(listed.contains { $0["this"] as? Bool == true && $0["pid"] is Int })
        let top = try jobstore("top", directory.path, "--iterations", "2", "--interval", "100ms", "--json")
        #expect(top.status == 0)
        let lines = top.out.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try json(String(lines[0]))
        let second = try json(String(lines[1]))
        #expect((first["states"] as? [String: Int])?.count == 6 && first["change_per_second"] == nil)
        #expect((second["change_per_second"] as? [String: Double])?.count == 6 && second["commits_per_second"] is Double)
        let queues = try #require(second["queues"] as? [[String: Any]])
        #expect(Set(queues.compactMap { $0["name"] as? String }) == ["mail", "reports"] && queues.allSatisfy { $0["finished_per_second"] is Double })
        #expect(first["expired_leases"] as? Int == 1)
        // On a terminal: the alternate screen, queues, a footer, and q quits long before the 50 refreshes.
        let script = URL(fileURLWithPath: "/usr/bin/script")
        guard FileManager.default.isExecutableFile(atPath: script.path) else { return }
        let tool = try helperExecutable("jobstore").path
        let live = try run(script, ["-qec", "stty cols 100 rows 30; \(tool) top \(directory.path) --interval 100ms --iterations 50", "/dev/null"], stdin: "q")
        #expect(live.status == 0, "\(live.out.prefix(1500))")  // e.g. a sanitizer's report
        #expect(live.out.contains("\u{1B}[?1049h") && live.out.hasSuffix("\u{1B}[?1049l"))  // the shell's screen back
        #expect(live.out.contains("q quits") && live.out.contains("reports") && live.out.contains("expired lease"))
        #expect(live.out.components(separatedBy: "q quits").count - 1 < 50)
    }

    @Test("bad input: one line on stderr, the documented exit code, nothing changed on disk")
    func badInput() throws {
        let directory = TemporaryDirectory()
        let jobs = try makeStore(directory.sub("store"))
        let store = directory.sub("store")
        expectError(try jobstore("stats", directory.sub("missing")), 2, "does not exist")
        expectError(try jobstore("jobs", "list", store, "--limit", "-5"), 2, "--limit must be at least 1")
        expectError(try jobstore("jobs", "history", store, "--limit", "-5"), 2, "--limit must be at least 1")
        #expect(!FileManager.default.fileExists(atPath: directory.sub("missing")))
        try FileManager.default.createDirectory(atPath: directory.sub("empty"), withIntermediateDirectories: true)
        expectError(try jobstore("stats", directory.sub("empty")), 1, "not a job store")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.sub("empty")).isEmpty)
        _ = FileManager.default.createFile(atPath: directory.sub("file"), contents: Data("hello".utf8))
        expectError(try jobstore("stats", directory.sub("file")), 1, "not a job store")
        let garbage = directory.sub("garbage")
        try FileManager.default.createDirectory(atPath: garbage, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: garbage + "/data.mdb", contents: Data(repeating: 7, count: 16384))
        expectError(try jobstore("stats", garbage), 1, "not")
        // An LMDB environment of another program: refused, and left without a database of ours.
        let foreign = directory.sub("foreign")
        let users = DatabaseDefinition<StringCodec, StringCodec>(name: "users")
        let env = try Environment(path: foreign, databases: [users])
        try env.write { txn in try txn.put(env.database(users), "ada", "lovelace") }
        env.close()
        expectError(try jobstore("stats", foreign), 1, "another program")
        expectError(try jobstore("import", foreign, "-", stdin: ""), 1, "another program")
        let reopened = try Environment(path: foreign, options: EnvironmentOptions(readOnly: true))
        #expect(try reopened.databaseNames() == ["users"])
        reopened.close()

        expectError(try jobstore("jobs", "show", store, "not-an-id"), 2, "not a job id")
        expectError(try jobstore("jobs", "show", store, "0190a5c4-1b2e-7000-8123-456789abcdef"), 1, "no job")
        expectError(try jobstore("jobs", "list", store, "--state", "sleeping"), 2, "not a state")
        expectError(try jobstore("jobs", "list", store, "--since", "yesterday"), 2, "not a time")
        expectError(try jobstore("prune", store, "--state", "succeeded", "--older-than", "7 days"), 2, "not a duration")
        expectError(try jobstore("prune", store, "--state", "pending", "--older-than", "7d"), 2, "must be succeeded")
        expectError(try jobstore("requeue", store), 2, "give job ids")
        expectError(try jobstore("stats"), 2, "Missing expected argument")
        expectError(try jobstore("frobnicate"), 2, "Unexpected argument")
        // Found in the pass over every command (issue 12): export --output onto a directory (the
        // store itself!) used to delete it; negative numbers said "Missing value"; raw NSErrors.
        expectError(try jobstore("export", store, "--output", store), 2, "is a directory")
        expectError(try jobstore("export", store, "--output", store + "/data.mdb"), 2, "would replace a store's data.mdb")
        #expect(FileManager.default.fileExists(atPath: store + "/data.mdb"))
        for (arguments, fragment) in [
            (["verify", store, "--chunk-size", "-1"], "--chunk-size must be at least 1"),
            (["verify", store, "--chunk-size", "0"], "--chunk-size must be at least 1"),
            (["queues", "limit", store, "mail", "--starts", "-5", "--per", "1m"], "--starts must be at least 1"),
            (["queues", "limit", store, "mail", "--starts", "5", "--per", "0s"], "1 ms or more"),
            (["queues", "pause", store, ""], "is not a queue name"),
            (["prune", store, "--state", "succeeded", "--older-than", "-1d"], "not a duration"),
            (["backup", store, ""], "give the backup's destination"),
            (["top", store, "--window", "50ms"], "--window (50ms) must be at least --interval"),
            (["demo", "--dir", directory.sub("file")], "is a file; give a new or empty directory"),
            (["demo", "--dir", store], "already holds a store"),
            (["bench", "--dir", directory.sub("file"), "--jobs", "1000"], "is a file"),
            (["jobs", "history", store, "--kind", ","], "--kind needs at least one event kind"),
        ] {
            expectError(try jobstore(arguments), 2, fragment)
        }
        let unwritable = try jobstore("backup", store, "/proc/no-such/backup")
        expectError(unwritable, 1, "cannot create the directory /proc/no-such/backup")
        #expect(!unwritable.err.contains("NSCocoaErrorDomain"))
        expectError(try jobstore("export", store, "--output", directory.sub("no-such/jobs.jsonl")), 1, "jobs.jsonl.partial: No such file or directory")
        let unknown = try jobstore("cancel", store, "0190a5c4-1b2e-7000-8123-456789abcdef")
        #expect(unknown.err.components(separatedBy: "0190a5c4-1b2e-7000-8123-456789abcdef").count == 2, "the id once: \(unknown.err)")
        #expect(try jobstore("queues", "resume", store, "never-paused").out == "queue never-paused was not paused\n")
        #expect(try jobstore("queues", "unlimit", store, "mail").out == "queue mail had no rate limit\n")

        // A store of a newer format.
        let newer = directory.sub("newer")
        try FileManager.default.copyItem(atPath: store, toPath: newer)
        let repository = try Environment(path: newer, databases: JobStore.Schema.all)
        try repository.write { txn in
            try txn.put(repository.database(JobStore.Schema.meta), "format_version", withUnsafeBytes(of: UInt32(99).littleEndian) { Array($0) })
        }
        repository.close()
        expectError(try jobstore("stats", newer), 1, "version 99")

        // Nothing on disk changed through all of this.
        let check = try JobRepository(path: store, options: JobStoreOptions(readOnly: true))
        defer { check.close() }
        for job in jobs.values { #expect(try check.job(job.id) == job) }
        #expect(try check.verify().isEmpty)
    }

    @Test("inspection while another process writes: every command succeeds and sees a consistent store")
    func inspectLiveStore() throws {
        let directory = TemporaryDirectory()
        let writer = Process()
        writer.executableURL = try helperExecutable("JobStoreTestHelper")
        writer.arguments = ["insert-loop", directory.path, "5"]
        writer.standardOutput = FileHandle.nullDevice
        try writer.run()
        defer {
            kill(writer.processIdentifier, SIGKILL)
            writer.waitUntilExit()
        }
        Thread.sleep(forTimeInterval: 0.3)
        var totals: [Int] = []
        for _ in 0..<5 {
            let stats = try jobstore("stats", directory.path, "--json")
            #expect(stats.status == 0, "\(stats.err)")
            let states = try #require(try json(stats.out)["states"] as? [String: Int])
            totals.append(states.values.reduce(0, +))
            #expect(try jobstore("jobs", "list", directory.path, "--state", "pending", "--limit", "5").status == 0)
            #expect(try jobstore("verify", directory.path).status == 0)
        }
        #expect(totals == totals.sorted(), "a reader never sees the store go back in time")
        #expect(totals.allSatisfy { $0 % 20 == 0 }, "batches are seen whole")
    }

    @Test("event history: jobs show prints the timeline, jobs history pages, filters and follows, pipelines show step times, prune --history-before")
    func history() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let jobs = try makeStore(path)
        let failed = try #require(jobs.values.first { $0.state == .failed })

        let show = try jobstore("jobs", "show", path, failed.id.description)
        #expect(show.status == 0)
        #expect(show.out.contains("timeline"))
        let timelineLines = show.out.split(separator: "\n").drop { !$0.hasPrefix("timeline") }.dropFirst()
        #expect(timelineLines.map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] } == ["inserted", "changed", "claimed", "failed"])
        #expect(show.out.contains("smtp timeout"))
        let shown = try json(jobstore("jobs", "show", path, failed.id.description, "--json").out)
        let events = try #require((shown["timeline"] as? [String: Any])?["events"] as? [[String: Any]])
        #expect(events.map { $0["kind"] as? String } == ["inserted", "changed", "claimed", "failed"])
        #expect(events.last?["message"] as? String == "smtp timeout" && events[2]["owner"] is String)

        // The whole history, in commit order: 12 inserts, then the changes.
        let all = try jobstore("jobs", "history", path, "--json")
        let lines = try all.out.split(separator: "\n").map { try json(String($0)) }
        #expect(lines.count > 12 && lines.prefix(12).allSatisfy { $0["kind"] as? String == "inserted" })
        let positions = try lines.map { try HistoryPosition(parsing: try #require($0["position"] as? String)) }
        #expect(positions == positions.sorted() && Set(positions).count == positions.count)
        // A page, and the next from where it says.
        let page = try jobstore("jobs", "history", path, "--limit", "5")
        let more = try #require(page.out.split(separator: "\n").last)
        #expect(page.out.split(separator: "\n").count == 6 && more.hasPrefix("more: --after "))
        let rest = try jobstore("jobs", "history", path, "--after", String(more.dropFirst("more: --after ".count)), "--json")
        #expect(rest.out.split(separator: "\n").count == lines.count - 5)
        let failures = try jobstore("jobs", "history", path, "--kind", "failed,cancelled", "--json").out.split(separator: "\n")
        #expect(try failures.map { try json(String($0))["kind"] as? String ?? "" }.sorted() == ["cancelled", "failed"])
        #expect(try jobstore("jobs", "history", path, "--since", "1h").out.split(separator: "\n").count == lines.count)

        // --follow --since replays, then prints what another process commits afterwards (from
        // now on without --since: OperatorDefectTests).
        let output = directory.sub("follow.txt")
        FileManager.default.createFile(atPath: output, contents: nil)
        let follower = Process()
        follower.executableURL = try helperExecutable("jobstore")
        follower.arguments = ["jobs", "history", path, "--follow", "--since", "1d", "--kind", "inserted", "--json"]
        follower.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try follower.run()
        defer {
            kill(follower.processIdentifier, SIGKILL)
            follower.waitUntilExit()
        }
        Thread.sleep(forTimeInterval: 0.3)
        let late = try {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            return try store.insert(NewJob(name: "late"))
        }()
        var followed = ""
        for _ in 0..<300 where !followed.contains(late.id.description) {
            Thread.sleep(forTimeInterval: 0.05)
            followed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }
        #expect(followed.contains(late.id.description))
        #expect(followed.split(separator: "\n").count == 13)

        // Pruning the history, dry run first.
        let dry = try json(jobstore("prune", path, "--history-before", "0s", "--dry-run", "--json").out)
        #expect(dry["would_delete_events"] as? Int == lines.count + 1)
        let pruned = try json(jobstore("prune", path, "--history-before", "0s", "--json").out)
        #expect(pruned["deleted_events"] as? Int == lines.count + 1)
        #expect(try jobstore("jobs", "history", path).out.isEmpty)
        #expect(try jobstore("jobs", "show", path, failed.id.description).out.contains("smtp timeout"))

        // Bad input.
        expectError(try jobstore("jobs", "history", path, "--since", "1h", "--after", "1.0"), 2, "not both")
        expectError(try jobstore("jobs", "history", path, "--after", "yesterday"), 2, "not a history position")
        expectError(try jobstore("jobs", "history", path, "--kind", "exploded"), 2, "not an event kind")
        expectError(try jobstore("jobs", "history", path, "--limit", "0"), 2, "at least 1")
        expectError(try jobstore("prune", path), 2, "--history-before")
        expectError(try jobstore("prune", path, "--older-than", "1d"), 2, "need --state")
    }
}
