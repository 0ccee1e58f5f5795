import Foundation
import JobStore
import LMDB
import Testing
import TestSupport

/// The bytes of a store's data file: equal before and after means the store was not changed.
func dataFile(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")) }

/// `--dry-run` (issue "Operators first", 1 and 3): a dry run changed the store on five paths
/// (`requeue --stuck`, and cancel, retry, delete and requeue by id or pipeline id), and a bulk
/// dry run counted what the filter selected rather than what would change.
@Suite("Dry runs: nothing changes, and the figures are the real run's", .serialized)
struct DryRunTests {
    /// `makeStore`'s jobs, a pipeline whose build failed for good (its dependents cancelled,
    /// lint still pending), and a pipeline of two waiting-chain steps in queue "chain".
    func makeDryRunStore(_ path: String) throws -> (jobs: [String: Job], failed: PipelineID, chain: PipelineID) {
        let jobs = try makeStore(path)
        let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
        defer { store.close() }
        let (failed, _) = try enqueueFailedRelease(store)
        let chain = try store.enqueue(PipelineDefinition(name: "chain", steps: [
            PipelineStep("first", job: NewJob(name: "first", queue: "chain")),
            PipelineStep("second", job: NewJob(name: "second", queue: "chain"), dependsOn: ["first"]),
        ]))
        try store.write { txn in
            try txn.register(ScheduleRecord(
                name: "digest", timing: "0 7 * * *", timeZone: "UTC", queue: "mail", jobName: "digest", missedTicks: .skip,
                job: NewJob(name: "digest", queue: "mail", payload: Array("all".utf8))))
        }
        return (jobs, failed.id, chain.id)
    }

    /// Writes `version` as the store's format version, as an older release left it.
    func setFormatVersion(_ version: UInt32, _ path: String) throws {
        let environment = try Environment(path: path, databases: JobStore.Schema.all)
        defer { environment.close() }
        try environment.write { txn in
            try txn.put(environment.database(JobStore.Schema.meta), "format_version", withUnsafeBytes(of: version.littleEndian) { Array($0) })
        }
    }

    @Test("every command and path that takes --dry-run leaves data.mdb byte for byte as it was, and says what it would do")
    func nothingChanges() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let (jobs, failed, chain) = try makeDryRunStore(path)
        _ = try makeStore(directory.sub("other"))  // jobs of other ids, to import
        let file = directory.sub("other.jsonl")
        try jobstore("export", directory.sub("other"), "--output", file)
        Thread.sleep(forTimeInterval: 0.01)  // the 1 ms lease of the claimed reports job has expired
        func id(_ name: String) -> String { jobs[name]!.id.description }
        // A store of the previous format (4), as every store is before its first writable open by
        // this release: a dry run must not upgrade it either.
        try setFormatVersion(4, path)
        let before = try dataFile(path)
        let cases: [(arguments: [String], status: Int32, says: String)] = [
            (["requeue", path, "--stuck", "--dry-run"], 0, "would requeue 1 stuck job"),
            (["requeue", path, id("job-7"), "--dry-run"], 0, "would be requeued, then pending"),
            (["requeue", path, "--state", "running", "--dry-run"], 0, "would requeue 1 job of the 1 selected"),
            (["cancel", path, id("job-6"), "--dry-run"], 0, "would be cancelled, then cancelled"),
            (["cancel", path, "--queue", "mail", "--dry-run"], 0, "would cancel"),
            (["cancel", path, failed.description, "--dry-run"], 0, "pipeline would be cancelled, then failed"),
            (["retry", path, id("job-1"), "--dry-run"], 0, "would be retried, then pending"),
            (["retry", path, "--state", "cancelled", "--dry-run"], 0, "would retry"),
            (["retry", path, failed.description, "--dry-run"], 0, "pipeline would be retried, then running"),
            (["delete", path, id("job-5"), "--dry-run"], 0, "would be deleted"),
            (["delete", path, "--state", "pending", "--dry-run"], 0, "would delete"),
            (["delete", path, chain.description, "--dry-run"], 0, "pipeline would be deleted"),
            (["delete", path, "--damaged", id("job-5"), "--dry-run"], 1, ""),  // its record reads: refused, as for real
            (["pipelines", "delete", path, failed.description, "--dry-run"], 0, "pipeline would be deleted"),
            (["prune", path, "--state", "succeeded", "--older-than", "0s", "--dry-run"], 0, "would delete 1 succeeded job"),
            (["prune", path, "--history-before", "0s", "--dry-run"], 0, "would delete"),
            (["import", path, file, "--dry-run"], 0, "12 jobs and 0 pipelines would be imported"),
            (["schedules", "run-now", path, "digest", "--dry-run"], 0, "job 'digest' would be enqueued in queue mail"),
            (["import", directory.sub("new"), file, "--create", "--dry-run"], 0, "12 jobs and 0 pipelines would be imported"),
        ]
        for (arguments, status, says) in cases {
            let result = try jobstore(arguments)
            #expect(result.status == status, "\(arguments): \(result.err)")
            #expect(says.isEmpty || result.out.contains(says), "\(arguments): \(result.out)")
            #expect(try dataFile(path) == before, "\(arguments) changed data.mdb")
        }
        // The same with --json: each line says it was a dry run.
        for arguments in [["cancel", path, id("job-6")], ["cancel", path, "--queue", "mail"], ["requeue", path, "--stuck"], ["schedules", "run-now", path, "digest"]] {
            let result = try jobstore(arguments + ["--dry-run", "--json"])
            #expect(result.status == 0, "\(arguments): \(result.err)")
            if (arguments.count == 3 && arguments[2] != "--stuck") || arguments[0] == "schedules" { #expect(try json(result.out)["dry_run"] as? Bool == true) }
            #expect(try dataFile(path) == before, "\(arguments) --json changed data.mdb")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.sub("new")), "import --create --dry-run made a store")
        // And the real runs do change it (the test above could not pass by accident), upgrading the format.
        let real = try jobstore("requeue", path, "--stuck")
        #expect(real.status == 0 && real.out.contains("requeued 1 stuck job"))
        #expect(try dataFile(path) != before)
        let upgraded = try JobRepository(path: path, options: JobStoreOptions(readOnly: true))
        #expect(try upgraded.formatVersion() == Schema.formatVersion)
        upgraded.close()
        #expect(try jobstore("verify", path).status == 0)
    }

    @Test("a bulk dry run reports what would change and what would be skipped, and why: the figures the real run then prints")
    func bulkFiguresMatch() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        _ = try makeDryRunStore(path)
        // Each: a dry run, then the real run, both --json. "chain": cancelling the first step
        // cancels the second, which the run then skips (a dry run in one transaction sees that).
        let commands: [[String]] = [
            ["cancel", path, "--queue", "chain"],
            ["retry", path, "--state", "succeeded"],
            ["cancel", path, "--queue", "mail"],
            ["requeue", path, "--queue", "reports"],
            ["delete", path, "--queue", "ci"],
            ["retry", path, "--queue", "ci"],
        ]
        for command in commands {
            let dry = try jobstore(command + ["--dry-run", "--json"])
            let real = try jobstore(command + ["--json"])
            #expect(dry.status == 0 && real.status == 0, "\(command): \(dry.err) \(real.err)")
            let would = try json(dry.out)
            let did = try json(real.out)
            #expect(would["would_change"] as? Int == did["changed"] as? Int, "\(command): \(dry.out) vs \(real.out)")
            #expect(would["would_skip"] as? Int == did["skipped"] as? Int, "\(command): \(dry.out) vs \(real.out)")
            for reason in ["skipped_state", "skipped_pipeline_step", "skipped_gone"] {
                #expect(would[reason] as? Int == did[reason] as? Int, "\(command) \(reason)")
            }
        }
        // The cascade, in words: one cancelled, one skipped because its state no longer allows it.
        let directory2 = TemporaryDirectory()
        _ = try makeDryRunStore(directory2.path)
        let text = try jobstore("cancel", directory2.path, "--queue", "chain", "--dry-run")
        #expect(text.out.contains("would cancel 1 job of the 2 selected, skip 1 (1 their state does not allow it)"), "\(text.out)")
        let succeeded = try jobstore("retry", directory2.path, "--state", "succeeded", "--dry-run")
        #expect(succeeded.out.contains("would retry 0 jobs of the 1 selected, skip 1"), "\(succeeded.out)")
        #expect(try jobstore("verify", path).status == 0)
    }
}
