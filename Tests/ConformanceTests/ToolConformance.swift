import Foundation
import JobScheduler
import JobStore
import JobStorePostgres
import Testing
import TestSupport

/// The admin tool's changes of many jobs at once, run against a store directory and a
/// PostgreSQL URL alike: the same selections, the same counts, dry runs that change nothing.
@Suite("Conformance: the admin tool's bulk changes on LMDB and on PostgreSQL", .serialized)
struct ToolConformanceTests {
    @Test("cancel/retry/delete by filter, requeue --stuck and prune: each dry run counts what the real run then does and changes nothing; the events name the tool",
          arguments: Backend.available)
    func bulkChanges(_ backend: Backend) async throws {
        try await withBackend(backend) { store, location in
            let a = try await store.enqueue((0..<3).map { _ in NewJob(name: "a", queue: "bulk") })
            let b = try await store.enqueue((0..<3).map { _ in NewJob(name: "b", queue: "bulk") })
            _ = try await store.enqueue((0..<2).map { _ in NewJob(name: "o", queue: "other") })
            let pipeline = try await store.enqueue(PipelineDefinition(name: "p", steps: [
                PipelineStep("s1", job: NewJob(name: "s1", queue: "ci")), PipelineStep("s2", job: NewJob(name: "s2", queue: "ci"), dependsOn: ["s1"]),
            ]))
            let future = Timestamp.now.adding(.seconds(3600))
            func snapshot() async throws -> ([JobState: Int], Int) { (try await store.counts(), try await store.countHistory(before: future)) }
            func tool(_ arguments: String...) throws -> [String: Any] {
                let result = try jobstore([arguments[0], location] + arguments.dropFirst() + ["--json"])
                #expect(result.status == 0, "\(arguments): \(result.out) \(result.err)")
                // One JSON line (prune prints one object over several lines).
                let object = try? JSONSerialization.jsonObject(with: Data(result.out.utf8))
                return try #require(object as? [String: Any], "\(arguments): \(result.out) \(result.err)")
            }
            func expectUnchanged(_ before: ([JobState: Int], Int), _ what: String) async throws {
                let after = try await snapshot()
                #expect(after.0 == before.0 && after.1 == before.1, "\(what) changed the store: \(before) → \(after)")
            }

            // Cancel by queue and name: counted first, nothing changed; then done.
            var before = try await snapshot()
            let dryCancel = try tool("cancel", "--queue", "bulk", "--name", "a", "--dry-run")
            #expect(dryCancel["would_change"] as? Int == 3 && dryCancel["selected"] as? Int == 3, "\(dryCancel)")
            try await expectUnchanged(before, "cancel --dry-run")
            let cancelled = try tool("cancel", "--queue", "bulk", "--name", "a")
            #expect(cancelled["changed"] as? Int == 3 && cancelled["skipped"] as? Int == 0, "\(cancelled)")
            for job in a { #expect(try await store.job(job.id)?.state == .cancelled) }
            for job in b { #expect(try await store.job(job.id)?.state == .pending) }
            try await waitUntil("the cancellation in the history") {  // 180 s: under ThreadSanitizer the history settled only after 30 s once (CI, 2026-12-07)
                try await store.events(of: a[0].id).events.last?.kind == .cancelled
            }
            #expect(try await store.events(of: a[0].id).events.last?.actor?.hasPrefix("jobstore tool (") == true)

            // Cancelling the whole queue: the cancelled ones are skipped for their state.
            before = try await snapshot()
            let dryAll = try tool("cancel", "--queue", "bulk", "--dry-run")
            #expect(dryAll["would_change"] as? Int == 3 && dryAll["skipped_state"] as? Int == 3, "\(dryAll)")
            try await expectUnchanged(before, "cancel --queue --dry-run")

            // Retry by state; delete by queue passes over the pipeline's steps.
            let dryRetry = try tool("retry", "--state", "cancelled", "--dry-run")
            #expect(dryRetry["would_change"] as? Int == 3, "\(dryRetry)")
            try await expectUnchanged(before, "retry --dry-run")
            #expect(try tool("retry", "--state", "cancelled")["changed"] as? Int == 3)
            for job in a { #expect(try await store.job(job.id)?.state == .pending) }
            let steps = try tool("delete", "--queue", "ci")
            #expect(steps["changed"] as? Int == 0 && steps["skipped_pipeline_step"] as? Int == 2, "\(steps)")
            #expect(try await store.pipeline(pipeline.id) != nil)

            // requeue --stuck: running jobs whose lease expired, back to pending.
            let claimed = try await store.finish([], claiming: [ClaimRequest(queue: "other", limit: 2)], lease: .milliseconds(1), owner: .random()).claimed
            #expect(claimed.count == 2)
            try await Task.sleep(for: .milliseconds(20))
            before = try await snapshot()
            let dryStuck = try jobstore("requeue", location, "--stuck", "--dry-run")
            #expect(dryStuck.status == 0 && dryStuck.out.contains("would requeue 2 stuck jobs (none changed: --dry-run)"), "\(dryStuck.out) \(dryStuck.err)")
            try await expectUnchanged(before, "requeue --stuck --dry-run")
            let stuck = try jobstore("requeue", location, "--stuck")
            #expect(stuck.status == 0 && stuck.out.contains("requeued 2 stuck jobs"), "\(stuck.out) \(stuck.err)")
            for job in claimed { #expect(try await store.job(job.id)?.state == .pending) }

            // prune: by creation and by finish time, counted first.
            #expect(try tool("cancel", "--queue", "bulk", "--name", "b")["changed"] as? Int == 3)
            _ = try await store.cancelPipeline(pipeline.id)
            before = try await snapshot()
            for selector in ["--older-than", "--finished-before"] {
                let dry = try tool("prune", "--state", "cancelled", selector, "0s", "--dry-run")
                #expect(dry["would_delete"] as? Int == 3 && dry["would_delete_pipelines"] as? Int == 1, "\(selector): \(dry)")
            }
            try await expectUnchanged(before, "prune --dry-run")
            let pruned = try tool("prune", "--state", "cancelled", "--finished-before", "0s")
            #expect(pruned["deleted"] as? Int == 3 && pruned["deleted_pipelines"] as? Int == 1, "\(pruned)")
            for job in b { #expect(try await store.job(job.id) == nil) }
            #expect(try await store.pipeline(pipeline.id) == nil)
            #expect(try await store.counts()[.cancelled] ?? 0 == 0)
            try await expectConsistent(store)
        }
    }

    @Test("search and errors in the tool: jobs list by payload and error text (bounded pages going on), jobs errors, and a retry by error text whose dry run changes nothing",
          arguments: Backend.available)
    func searchAndErrors(_ backend: Backend) async throws {
        try await withBackend(backend) { store, location in
            let jobs = try await store.enqueue((0..<20).map { NewJob(name: "sync", queue: "s", payload: Array("{\"user\":\($0)}".utf8), maxAttempts: 1) })
            let owner = OwnerToken.random()
            let claimed = try await store.finish([], claiming: [ClaimRequest(queue: "s", limit: 20)], lease: .seconds(60), owner: owner).claimed
            let byID = Dictionary(uniqueKeysWithValues: jobs.enumerated().map { ($1.id, $0) })
            _ = try await store.finish(claimed.map { job in
                let i = byID[job.id] ?? 0
                return JobOutcome(id: job.id, owner: owner, kind: i < 5 ? .failed(error: "timeout after 30 s", retryAt: nil) : i < 7 ? .failed(error: "bad token", retryAt: nil) : .succeeded(result: nil))
            }, claiming: [], lease: .seconds(60), owner: owner)
            func json(_ arguments: [String]) throws -> [String: Any] {
                let result = try jobstore([arguments[0], arguments[1], location] + arguments.dropFirst(2) + ["--json"])
                #expect(result.status == 0, "\(arguments): \(result.out) \(result.err)")
                return try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any], "\(result.out)")
            }
            func ids(_ object: [String: Any]) -> [String] { (object["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } }

            #expect(ids(try json(["jobs", "list", "--payload-contains", "\"user\":13}"])) == [jobs[13].id.description])
            #expect(Set(ids(try json(["jobs", "list", "--state", "failed", "--error-contains", "token"]))) == Set([jobs[5], jobs[6]].map(\.id.description)))
            // A bounded walk: pages of at most 4 looked at, together every "timeout".
            var found: [String] = []
            var after: String?
            var pages = 0
            repeat {
                let page = try json(["jobs", "list", "--error-contains", "timeout", "--examine-at-most", "4"] + (after.map { ["--after", $0] } ?? []))
                #expect((page["examined"] as? Int ?? 99) <= 4)
                found += ids(page)
                after = page["next"] as? String
                pages += 1
            } while after != nil && pages < 20
            #expect(Set(found) == Set(jobs[0..<5].map(\.id.description)) && pages >= 5)

            let errors = try json(["jobs", "errors", "--since", "1h"])
            let groups = errors["errors"] as? [[String: Any]] ?? []
            #expect(groups.map { $0["message"] as? String } == ["timeout after 30 s", "bad token"] && groups.map { $0["jobs"] as? Int } == [5, 2], "\(errors)")
            #expect(errors["examined"] as? Int == 7 && errors["complete"] as? Bool == true)

            let counts = try await store.counts()
            let dry = try jobstore(["retry", location, "--error-contains", "token", "--dry-run", "--json"])
            #expect(dry.status == 0 && dry.out.contains("\"would_change\":2"), "\(dry.out) \(dry.err)")
            #expect(try await store.counts() == counts)
            let retried = try jobstore(["retry", location, "--error-contains", "token", "--json"])
            #expect(retried.status == 0 && retried.out.contains("\"changed\":2"), "\(retried.out) \(retried.err)")
            #expect(try await store.job(jobs[5].id)?.state == .pending)
            #expect(try await store.job(jobs[0].id)?.state == .failed)
            let refused = try jobstore(["jobs", "list", location, "--payload-contains", ""])
            #expect(refused.status != 0 && refused.err.contains("--payload-contains is empty"))
        }
    }

    @Test("export from LMDB, import into PostgreSQL, export again, import into LMDB: every job, pipeline, queue control, schedule and timeline event arrives as it was",
          .enabled(if: postgresURL != nil, Comment(rawValue: postgresSkipped)))
    func exportImportBetweenBackends() async throws {
        try await withTemporaryDirectory() { directory in
            // Content of every kind on LMDB: jobs in each state, a half-run pipeline, controls.
            let source = try JobRepository(path: directory.sub("source"), options: JobStoreOptions(durability: .noSync))
            defer { source.close() }
            let owner = OwnerToken.random()
            _ = try await source.enqueue([
                NewJob(name: "ok", queue: "q", payload: Array("done".utf8)), NewJob(name: "bad", queue: "q", maxAttempts: 1),
                NewJob(name: "stop", queue: "q"), NewJob(name: "run", queue: "q", priority: 3),
                NewJob(name: "later", queue: "q", runAt: Timestamp.now.adding(.seconds(3600))),
                NewJob(name: "unique", queue: "u", uniqueKey: "only-one", timeout: .seconds(90), headers: ["request-id": "r-1", "traceparent": "00-1-2-01"]),
            ])
            let claimed = try await source.finish([], claiming: [ClaimRequest(queue: "q", limit: 3)], lease: .seconds(600), owner: owner).claimed
            let byName = Dictionary(uniqueKeysWithValues: claimed.map { ($0.name, $0) })
            _ = try await source.finish([
                JobOutcome(id: try #require(byName["ok"]).id, owner: owner, kind: .succeeded(result: Array("r".utf8))),
                JobOutcome(id: try #require(byName["bad"]).id, owner: owner, kind: .failed(error: "boom", retryAt: nil)),
            ], claiming: [], lease: .seconds(600), owner: owner)
            let pending = try #require(try source.jobs(matching: JobFilter(state: .pending, queue: "q")).jobs.first { $0.name == "stop" })
            _ = try await source.cancel(pending.id)
            let pipeline = try await source.enqueue(PipelineDefinition(name: "diamond", steps: [
                PipelineStep("a", job: NewJob(name: "a", queue: "ci")), PipelineStep("b", job: NewJob(name: "b", queue: "ci", headers: ["step": "b"]), dependsOn: ["a"]),
                PipelineStep("c", job: NewJob(name: "c", queue: "ci"), dependsOn: ["a"]), PipelineStep("d", job: NewJob(name: "d", queue: "ci"), dependsOn: ["b", "c"]),
            ]))
            let step = try await source.finish([], claiming: [ClaimRequest(queue: "ci", limit: 1)], lease: .seconds(600), owner: owner).claimed
            _ = try await source.finish(step.map { JobOutcome(id: $0.id, owner: owner, kind: .succeeded(result: nil)) }, claiming: [], lease: .seconds(600), owner: owner)
            try await source.pause(queue: "q")
            try await source.setRateLimit(queue: "u", starts: 5, per: .seconds(60))
            _ = try await source.register(ScheduleRecord(
                name: "nightly", timing: "0 3 * * *", timeZone: "UTC", queue: "ci", jobName: "build", missedTicks: .skip,
                lastTick: Timestamp.now.adding(.seconds(-3600)), nextTick: nil,
                job: NewJob(name: "build", queue: "ci", payload: [0, 1, 255], priority: 2, uniqueKey: "nightly", headers: ["k": "v"])))

            try await withTestDatabase(try #require(postgresURL)) { url in
                // LMDB → PostgreSQL (an empty database: --create makes the schema) → LMDB.
                let first = directory.sub("first.jsonl"), second = directory.sub("second.jsonl")
                for (command, expected) in [
                    (["export", directory.sub("source"), "--output", first], "exported 10 jobs, 1 pipelines"),
                    (["import", url, first, "--dry-run"], "would be imported"),
                    (["import", url, first, "--create"], "imported 10 jobs, 1 pipeline and 3 queue controls or schedules"),
                    (["export", url, "--output", second], "exported 10 jobs, 1 pipelines"),
                    (["import", directory.sub("copy"), second, "--create"], "imported 10 jobs, 1 pipeline and 3 queue controls or schedules"),
                ] {
                    let result = try jobstore(command)
                    if command.contains("--dry-run") {
                        // The database has no schema yet: a dry run does not make one, and says so.
                        #expect(result.status == 1 && result.err.contains("no job store"), "\(command): \(result.out) \(result.err)")
                        continue
                    }
                    #expect(result.status == 0 && result.out.contains(expected), "\(command): \(result.out) \(result.err)")
                }
                let postgres = try await PostgresJobStore(url: url, options: .forTests)
                let copy = try JobRepository(path: directory.sub("copy"), options: JobStoreOptions(durability: .noSync))
                defer { copy.close() }
                let stores: [(String, any AdministrableStore)] = [("PostgreSQL", postgres), ("the LMDB copy", copy)]
                let originals = try source.jobs(matching: JobFilter(), limit: 100).jobs
                #expect(originals.count == 10)
                for (name, store) in stores {
                    for job in originals {
                        #expect(try await store.job(job.id) == job, "\(name): job \(job.name)")
                    }
                    let details = try #require(try await store.pipelineDetails(pipeline.id), "\(name)")
                    let original = try #require(try source.pipelineDetails(pipeline.id))
                    #expect(details.steps == original.steps && details.jobs == original.jobs, "\(name)")
                    #expect(details.pipeline.state == original.pipeline.state && details.pipeline.succeededSteps == 1, "\(name)")
                    let queues = Dictionary(uniqueKeysWithValues: try await store.queues().map { ($0.name, $0) })
                    let pausedAt = try source.queues().first { $0.name == "q" }?.pausedAt
                    #expect(queues["q"]?.pausedAt == pausedAt && pausedAt != nil, "\(name)")
                    #expect(queues["u"]?.rateLimit?.starts == 5, "\(name)")
                    let schedules = try await store.schedules()
                    let lastTick = try source.schedules().first?.lastTick
                    #expect(schedules.map(\.name) == ["nightly"] && schedules.first?.lastTick == lastTick, "\(name)")
                    #expect(schedules.first?.job == (try source.schedules().first?.job) && schedules.first?.job != nil, "\(name)")
                    #expect(try await store.verify(chunkSize: 1000).isEmpty, "\(name)")
                }
                // Each timeline: the original events, then one `inserted` per import, by the tool.
                for job in originals {
                    let before = try source.events(of: job.id).events
                    let there = try await postgres.events(of: job.id).events
                    let back = try copy.events(of: job.id).events
                    #expect(Array(there.dropLast()) == before, "job \(job.name) on PostgreSQL")
                    #expect(Array(back.dropLast()) == there, "job \(job.name) back on LMDB")
                    #expect(there.last?.kind == .inserted && there.last?.actor?.hasPrefix("jobstore tool (") == true)
                }
                await postgres.close()
            }
        }
    }
}

extension ToolConformanceTests {
    @Test("run now: a schedule's kept job is enqueued at once with every field, by the tool or the caller named in its history, its ticks untouched; the dry run changes nothing; a schedule without a kept job, or none, is a clear error",
          arguments: Backend.available)
    func runNow(_ backend: Backend) async throws {
        try await withBackend(backend) { store, location in
            let template = NewJob(
                name: "digest", queue: "mail", payload: Array(#"{"to":"all"}"#.utf8), priority: 3, maxAttempts: 4, tenant: "acme",
                timeout: .seconds(90), headers: ["source": "cron"])
            let lastTick = Timestamp.now.adding(.seconds(-600))
            _ = try await store.register(ScheduleRecord(
                name: "digest", timing: "every 3600000000µs", timeZone: "UTC", queue: "mail", jobName: "digest", missedTicks: .skip,
                lastTick: lastTick, job: template))
            _ = try await store.register(ScheduleRecord(name: "old", timing: "0 3 * * *", timeZone: "UTC", queue: "mail", jobName: "old", missedTicks: .skip))
            #expect(try await store.schedules().map { $0.job } == [template, nil])

            let future = Timestamp.now.adding(.seconds(3600))
            let before = (try await store.counts(), try await store.countHistory(before: future))
            let dry = try jobstore(["schedules", "run-now", location, "digest", "--dry-run", "--json"])
            #expect(dry.status == 0 && dry.out.contains(#""dry_run":true"#), "\(dry.out) \(dry.err)")
            let after = (try await store.counts(), try await store.countHistory(before: future))
            #expect(after.0 == before.0 && after.1 == before.1, "run-now --dry-run changed the store: \(before) → \(after)")

            let run = try jobstore(["schedules", "run-now", location, "digest", "--json"])
            #expect(run.status == 0, "\(run.out) \(run.err)")
            let line = try #require(try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any], "\(run.out)")
            let id = try JobID(parsing: try #require(line["job"] as? String))
            let job = try #require(try await store.job(id))
            #expect(job.name == "digest" && job.queue == "mail" && job.payload == template.payload && job.priority == 3)
            #expect(job.maxAttempts == 4 && job.tenant == "acme" && job.timeout == .seconds(90) && job.headers == ["source": "cron"])
            let now = Timestamp.now
            #expect(job.state == .pending && job.runAt <= now)
            try await waitUntil("the insert in the history") { try await store.events(of: id).events.last?.kind == .inserted }
            #expect(try await store.events(of: id).events.last?.actor?.hasPrefix("jobstore tool (") == true)
            #expect(try await store.schedules().first?.lastTick == lastTick)

            // The library call names its caller.
            let second = try await store.runNow(schedule: "digest", actor: "ops runbook", dryRun: false)
            #expect(second.id != id && second.payload == template.payload)
            try await waitUntil("the insert in the history") { try await store.events(of: second.id).events.last?.actor == "ops runbook" }

            let old = try jobstore(["schedules", "run-now", location, "old"])
            #expect(old.status == 1 && old.err.contains("registered without its job"), "\(old.out) \(old.err)")
            let none = try jobstore(["schedules", "run-now", location, "nope"])
            #expect(none.status == 1 && none.err.contains("no schedule 'nope' is registered"), "\(none.out) \(none.err)")
            await #expect(throws: JobStoreError.self) { try await store.runNow(schedule: "nope", actor: "t", dryRun: true) }
            let listed = try jobstore(["schedules", location, "--json"])
            let rows = try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]]
            #expect(listed.status == 0 && rows?.map { $0["run_now"] as? Bool } == [true, false], "\(listed.out)")
        }
    }
}
