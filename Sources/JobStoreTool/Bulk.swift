import ArgumentParser
import Foundation
import JobStore

/// Which jobs a bulk action takes: a filter (state, queue, name, creation or finish time), or ids
/// read from stdin (`-`). Shared by `cancel`, `retry`, `requeue` and `delete`.
struct BulkSelection: ParsableArguments {
    @Option(parsing: .unconditional, help: "Only jobs in this state.", completion: .list(JobState.allCases.map(\.description)))
    var state: String?
    @Option(parsing: .unconditional, help: "Only jobs of this queue.")
    var queue: String?
    @Option(parsing: .unconditional, help: "Only jobs with this name.")
    var name: String?
    @Option(parsing: .unconditional, help: "Only jobs created before: a time (2026-11-23, 2026-11-23T10:00:00Z) or a duration ago (2h).")
    var createdBefore: String?
    @Option(parsing: .unconditional, help: "Only finished jobs that finished before (same forms).")
    var finishedBefore: String?
    @Flag(help: "Only count what would change.")
    var dryRun = false
    @Option(parsing: .unconditional, help: "Changes per transaction.")
    var batchSize = 1000

    /// Whether any filter was given.
    var filtered: Bool { state != nil || queue != nil || name != nil || createdBefore != nil || finishedBefore != nil }

    func validate() throws {
        if let state, JobState(name: state) == nil {
            throw ValidationError("'\(state)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
        }
        if let createdBefore { _ = try parseTime(createdBefore) }
        if let finishedBefore { _ = try parseTime(finishedBefore) }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    /// The ids of the matching jobs, from the indexes: `idx.state_created` with a state,
    /// `idx.created` otherwise (a queue or name filter is applied to that range).
    func select(_ store: JobRepository) throws -> [JobID] {
        let finishedCutoff = try finishedBefore.map(parseTime)
        let filter = JobFilter(
            state: state.flatMap(JobState.init(name:)), createdUntil: try createdBefore.map(parseTime), queue: queue)
        var ids: [JobID] = []
        var cursor: PageCursor?
        repeat {
            let page = try store.jobs(matching: filter, limit: 1000, after: cursor, unreadable: { error in
                FileHandle.standardError.write(Data("jobstore: skipped: \(error)\n".utf8))
            })
            for job in page.jobs where name == nil || job.name == name {
                if let finishedCutoff, !(job.state.isTerminal && job.updatedAt < finishedCutoff) { continue }
                ids.append(job.id)
            }
            cursor = page.next
        } while cursor != nil
        return ids
    }
}

/// The ids given on the command line, or read from stdin when the only one is `-`.
func givenIDs(_ ids: [String]) throws -> [String] { ids == ["-"] ? try idsFromStandardInput() : ids }

/// Checks that a bulk command got ids or filters, not both.
func requireIDsOrFilters(_ ids: [String], _ selection: BulkSelection, or alternative: String = "") throws {
    if ids.isEmpty == !selection.filtered {
        throw ValidationError("give job ids (or '-' to read them from stdin) or filters (--state, --queue, --name, …)\(alternative), not both, not neither")
    }
}

/// Reads job ids, one per line, from stdin (for `… -`).
func idsFromStandardInput() throws -> [String] {
    String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

/// Applies `change` to the selected jobs, `batchSize` per transaction; a job the change does not
/// apply to (its state, a pipeline step for `delete`, gone meanwhile) is skipped and counted.
/// Prints what happened (or, with `--dry-run`, what would).
func changeAll(
    _ options: StoreOptions, _ selection: BulkSelection, verb: String, _ change: @escaping @Sendable (JobTransaction, JobID) throws -> Bool
) throws {
    let store = try options.open(writable: !selection.dryRun)
    defer { store.close() }
    let ids = try selection.select(store)
    if selection.dryRun {
        print(options.json
            ? try jsonLine(["dry_run": true, "would_\(verb.replacingOccurrences(of: " ", with: "_"))": .count(ids.count)] as [String: JSONValue])
            : "would try to \(verb) \(ids.count.grouped) job\(ids.count == 1 ? "" : "s") (none changed: --dry-run)")
        return
    }
    var progress = Progress(verb)
    var changed = 0
    var skipped = 0
    for start in stride(from: 0, to: ids.count, by: selection.batchSize) {
        let batch = Array(ids[start..<min(ids.count, start + selection.batchSize)])
        let (done, notApplicable) = try store.write { txn -> (Int, Int) in
            var done = 0
            var notApplicable = 0
            for id in batch {
                do {
                    if try change(txn, id) { done += 1 } else { notApplicable += 1 }
                } catch let error as JobStoreError where [.illegalTransition, .notFound, .invalidArgument].contains(where: { $0 ~= error }) {
                    notApplicable += 1  // refused before anything of it was written
                }
            }
            return (done, notApplicable)
        }
        changed += done
        skipped += notApplicable
        progress.update(changed + skipped)
    }
    progress.finish()
    if options.json {
        print(try jsonLine(["changed": .count(changed), "skipped": .count(skipped), "selected": .count(ids.count)] as [String: JSONValue]))
    } else {
        let past = ["cancel": "cancelled", "retry": "retried", "requeue": "requeued", "delete": "deleted"][verb] ?? verb
        print("\(past) \(changed.grouped) job\(changed == 1 ? "" : "s")"
            + (skipped > 0 ? "; \(skipped.grouped) skipped (their state does not allow it, or they are pipeline steps)" : ""))
    }
}

/// `jobstore delete PATH (ID… | - | filters)`.
struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete jobs by id or by filter (a pipeline step's job only goes with its pipeline).",
        discussion: "Select by --state, --queue, --name, --created-before, --finished-before, or give ids (or '-' to read them from stdin). Try --dry-run first.")
    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: BulkSelection
    @Argument(help: "Job ids, or '-' to read them from stdin.")
    var ids: [String] = []
    @Flag(help: "Delete jobs whose record cannot be read (verify names each as a bad record), with every index entry naming them, and recount the counters: every index and record is walked, so it takes a while on a large store. Ids only.")
    var damaged = false

    func validate() throws {
        if damaged && (selection.filtered || ids.isEmpty) {
            throw ValidationError("--damaged takes the ids of damaged jobs (as `jobstore verify` names them), not filters")
        }
        try requireIDsOrFilters(ids, selection)
    }

    func run() throws {
        if damaged {
            try deleteDamaged(try parseIDs(try givenIDs(ids)))
        } else if selection.filtered {
            try changeAll(store, selection, verb: "delete") { txn, id in try txn.delete(id) }
        } else {
            try changeEach(store, try givenIDs(ids), verb: "deleted") { store, id in
                guard let job = try store.job(id) else { throw CommandFailure("no job \(id)") }
                try store.delete(id)
                return job
            }
        }
    }

    /// `--damaged`: each id's unreadable record and the index entries naming it, one
    /// transaction each (a refusal, such as a record that reads, leaves the rest to go on).
    func deleteDamaged(_ ids: [JobID]) throws {
        let jobs = try store.open(writable: true)
        defer { jobs.close() }
        var failures = 0
        for id in ids {
            do {
                let removed = try jobs.write { try $0.deleteDamaged(id) }
                print(store.json
                    ? try jsonLine(["id": .string(id.description), "ok": true, "index_entries_removed": .count(removed)] as [String: JSONValue])
                    : "\(id): damaged record deleted, with the \(removed) index entr\(removed == 1 ? "y" : "ies") naming it; counters recounted")
            } catch {
                failures += 1
                try reportFailure(id, error, json: store.json)
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
