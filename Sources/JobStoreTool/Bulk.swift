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
    @OptionGroup var search: SearchOptions
    @Option(parsing: .unconditional, help: "Only jobs created before: a time (2026-11-23, 2026-11-23T10:00:00Z) or a duration ago (2h).")
    var createdBefore: String?
    @Option(parsing: .unconditional, help: "Only finished jobs that finished before (same forms).")
    var finishedBefore: String?
    @Flag(help: "Only count what would change.")
    var dryRun = false
    @Option(parsing: .unconditional, help: "Changes per transaction.")
    var batchSize = 1000

    /// Whether any filter was given.
    var filtered: Bool { state != nil || queue != nil || search.given || createdBefore != nil || finishedBefore != nil }

    func validate() throws {
        guard Validation.enabled else { return }
        if let state, JobState(name: state) == nil {
            throw ValidationError("'\(state)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
        }
        if let createdBefore { _ = try parseTime(createdBefore) }
        if let finishedBefore { _ = try parseTime(finishedBefore) }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    /// The ids of the matching jobs, from the indexes: on LMDB `idx.state_created` with a
    /// state, `idx.created` otherwise (a queue or name filter is applied to that range; a
    /// record that cannot be read is skipped, and said so); on PostgreSQL the same query.
    func select(_ opened: OpenedStore) async throws -> [JobID] {
        let finishedCutoff = try finishedBefore.map(parseTime)
        var filter = JobFilter(
            state: state.flatMap(JobState.init(name:)), createdUntil: try createdBefore.map(parseTime), queue: queue)
        search.apply(to: &filter)
        var ids: [JobID] = []
        try await opened.forEachPage(matching: filter, unreadable: { error in
            FileHandle.standardError.write(Data("jobstore: skipped: \(error)\n".utf8))
        }) { jobs in
            for job in jobs {
                if let finishedCutoff, !(job.state.isTerminal && job.updatedAt < finishedCutoff) { continue }
                ids.append(job.id)
            }
        }
        return ids
    }
}

/// The checks a listing or a bulk action makes on each job of its index range: a name, a text
/// in the payload, a text in an error message (`JobFilter`'s fields). Shared by `jobs list` and
/// the bulk commands.
struct SearchOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Only jobs with this name.")
    var name: String?
    @Option(parsing: .unconditional, help: "Only jobs whose payload contains this text (its UTF-8 bytes; case matters), e.g. '\"user\":42'.")
    var payloadContains: String?
    @Option(parsing: .unconditional, help: "Only jobs with an error message (of any attempt) that contains this text (case matters).")
    var errorContains: String?

    /// Whether any was given.
    var given: Bool { name != nil || payloadContains != nil || errorContains != nil }

    func validate() throws {
        guard Validation.enabled else { return }
        if payloadContains == "" { throw ValidationError("--payload-contains is empty: give the text to look for, or leave it out") }
        if errorContains == "" { throw ValidationError("--error-contains is empty: give the text to look for, or leave it out") }
    }

    /// Sets the filter's fields.
    func apply(to filter: inout JobFilter) {
        filter.name = name
        filter.payloadContains = payloadContains
        filter.errorContains = errorContains
    }
}

extension OpenedStore {
    /// Hands `body` the jobs matching `filter` a page (1,000) at a time, by creation time, from
    /// the indexes. On LMDB a record that cannot be read goes to `unreadable` and the walk goes
    /// on; on PostgreSQL there is no such thing.
    func forEachPage(
        matching filter: JobFilter, unreadable: @escaping (JobStoreError) -> Void, _ body: ([Job]) async throws -> Void
    ) async throws {
        var cursor: PageCursor?
        repeat {
            let page = if let lmdb {
                try lmdb.jobs(matching: filter, limit: 1000, after: cursor, unreadable: unreadable)
            } else {
                try await store.jobs(matching: filter, order: .oldestFirst, limit: 1000, after: cursor)
            }
            try await body(page.jobs)
            cursor = page.next
        } while cursor != nil
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

/// Why a bulk change passed a job over.
enum SkipReason: String, CaseIterable {
    case state = "their state does not allow it"
    case pipelineStep = "pipeline steps (they go with their pipeline)"
    case gone = "gone meanwhile"

    /// The reason's name in `--json` output: `skipped_<key>`.
    var key: String {
        switch self {
        case .state: "state"
        case .pipelineStep: "pipeline_step"
        case .gone: "gone"
        }
    }

    /// The reason for a refusal (``JobStoreError/isRefusal``).
    init(_ error: JobStoreError) {
        switch error.code {
        case .illegalTransition: self = .state
        case .notFound: self = .gone
        default: self = .pipelineStep
        }
    }
}

/// Applies `change` to the selected jobs (jobs only, never a pipeline), `batchSize` per
/// transaction, on either backend; a job the change does not apply to (its state, a pipeline
/// step for `delete`, gone meanwhile) is skipped and counted by reason. With `--dry-run` every
/// batch is rehearsed in one transaction that is rolled back, so the counts are those the real
/// run would print (cascades included: a step cancelled by an earlier one is then skipped).
func changeAll(_ options: StoreOptions, _ selection: BulkSelection, _ change: OperatorChange) async throws {
    let dryRun = selection.dryRun
    let verb = change.rawValue
    let (selected, changed, skipped) = try await OpenedStore.with(options, writable: true, upgrading: !dryRun) { opened in
        let ids = try await selection.select(opened)
        var progress = Progress(dryRun ? "checked" : verb)
        var changed = 0
        var skipped: [SkipReason: Int] = [:]
        func count(_ results: [Result<OperatorOutcome, JobStoreError>]) {
            for result in results {
                switch result {
                case .success: changed += 1
                case .failure(let error): skipped[SkipReason(error), default: 0] += 1
                }
            }
            progress.update(changed + skipped.values.reduce(0, +))
        }
        if dryRun {
            count(try await opened.store.apply(change, toJobs: ids, actor: toolActor, dryRun: true))
        } else {
            for start in stride(from: 0, to: ids.count, by: selection.batchSize) {
                let batch = Array(ids[start..<min(ids.count, start + selection.batchSize)])
                count(try await opened.store.apply(change, toJobs: batch, actor: toolActor, dryRun: false))
            }
        }
        progress.finish()
        return (ids.count, changed, skipped)
    }
    let skippedTotal = skipped.values.reduce(0, +)
    if options.json {
        var line: [String: JSONValue] = [
            dryRun ? "would_change" : "changed": .count(changed), dryRun ? "would_skip" : "skipped": .count(skippedTotal),
            "selected": .count(selected),
        ]
        for reason in SkipReason.allCases { line["skipped_\(reason.key)"] = .count(skipped[reason] ?? 0) }
        if dryRun { line["dry_run"] = true }
        print(try jsonLine(line))
    } else {
        let why = SkipReason.allCases.compactMap { reason in skipped[reason].map { "\($0.grouped) \(reason.rawValue)" } }.joined(separator: ", ")
        let jobs = "\(changed.grouped) job\(changed == 1 ? "" : "s")"
        let skips = skippedTotal > 0 ? "\(skippedTotal.grouped) (\(why))" : "none"
        print(dryRun
            ? "would \(verb) \(jobs) of the \(selected.grouped) selected, skip \(skips) (none changed: --dry-run)"
            : "\(change.done) \(jobs) of the \(selected.grouped) selected, skipped \(skips)")
    }
}

/// `jobstore delete PATH (ID… | - | filters)`.
struct Delete: AsyncParsableCommand {
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
        guard Validation.enabled else { return }
        if damaged && (selection.filtered || ids.isEmpty) {
            throw ValidationError("--damaged takes the ids of damaged jobs (as `jobstore verify` names them), not filters")
        }
        try requireIDsOrFilters(ids, selection)
    }

    func run() async throws {
        if damaged {
            try deleteDamaged(try parseIDs(try givenIDs(ids)))
        } else if selection.filtered {
            try await changeAll(store, selection, .delete)
        } else {
            try await changeEach(store, try givenIDs(ids), .delete, dryRun: selection.dryRun)
        }
    }

    /// `--damaged`: each id's unreadable record and the index entries naming it, one
    /// transaction each (a refusal, such as a record that reads, leaves the rest to go on).
    func deleteDamaged(_ ids: [JobID]) throws {
        let dryRun = selection.dryRun
        let jobs = try openForChange(store, dryRun: dryRun)
        defer { jobs.close() }
        var failures = 0
        for id in ids {
            do {
                let removed = try applying(jobs, dryRun: dryRun) { try $0.deleteDamaged(id) }
                let entries = "\(removed) index entr\(removed == 1 ? "y" : "ies") naming it"
                var line: [String: JSONValue] = ["id": .string(id.description), "ok": true, "index_entries_removed": .count(removed)]
                if dryRun { line["dry_run"] = true }
                print(store.json
                    ? try jsonLine(line)
                    : dryRun
                        ? "\(id): the damaged record would be deleted, with the \(entries) (--dry-run: nothing changed)"
                        : "\(id): damaged record deleted, with the \(entries); counters recounted")
            } catch {
                failures += 1
                try reportFailure(id, error, json: store.json)
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
