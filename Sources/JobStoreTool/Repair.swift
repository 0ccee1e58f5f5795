import ArgumentParser
import Foundation
import JobStore
import JobStoreLines

/// `jobstore export PATH|URL`: jobs, then pipelines, as JSON lines.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write jobs, then pipelines, then queue controls and schedules, as JSON lines (stdout, or --output FILE).",
        discussion: "Pipeline lines carry \"kind\": \"pipeline\" and come after every job, so that `import` finds each pipeline's jobs in place; then a \"queue\" line for each paused or rate-limited queue and a \"schedule\" line for each periodic job (with its last tick, so a restored store does not run it again). Each job carries its timeline (import puts it back, then records its own `inserted` event); the store's history does not travel. Either backend: a directory or a postgres:// URL, and `import` takes either, so a store moves between them.")

    @Argument(help: "The store: its directory, or a PostgreSQL URL (postgres://user@host:port/database).")
    var path: String
    @Option(
        help: "Only jobs in this state, and no pipeline (nor any pipeline step's job: those travel with their pipeline).",
        completion: .list(JobState.allCases.map(\.description)))
    var state: String?
    @Option(parsing: .unconditional, help: "Write to this file instead of stdout (an existing file only with --force).")
    var output: String?
    @Flag(help: "Replace the --output file if it exists.")
    var force = false

    func validate() throws {
        guard Validation.enabled else { return }
        if let state, JobState(name: state) == nil {
            throw ValidationError("'\(state)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
        }
        if let output {
            // The file is replaced at the end: never a directory (a store's above all), never a store's file.
            var isDirectory: ObjCBool = false
            if output.isEmpty { throw ValidationError("--output needs a file name") }
            if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("\(output) is a directory; give --output a file name, e.g. \(output)/jobs.jsonl")
            }
            let name = (output as NSString).lastPathComponent
            if name == "data.mdb" || name == "lock.mdb" {
                throw ValidationError("\(output) would replace a store's \(name); give --output another file name")
            }
            if !force && FileManager.default.fileExists(atPath: output) {
                throw ValidationError("\(output) exists; give --force to replace it, or another file name")
            }
        }
    }

    func run() async throws {
        try await OpenedStore.with(try StoreOptions.parse([path])) { try await export($0) }
    }

    func export(_ opened: OpenedStore) async throws {
        let store = opened.store
        var sink = FileHandle.standardOutput
        // To a file: written to a temporary file beside it and renamed at the end, so an
        // interrupted export never leaves a file ending in half a line.
        let partial = output.map { $0 + ".partial" }
        if let partial {
            let created = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard created >= 0 else { throw CommandFailure("cannot create \(partial): \(String(cString: strerror(errno)))") }
            sink = FileHandle(fileDescriptor: created, closeOnDealloc: true)
        }
        /// A job's export line, with its timeline (import puts it back).
        func exported(_ job: Job) async throws -> String {
            var line = JobJSON(job)
            line.timeline = TimelineJSON(try await store.events(of: job.id))
            return try jsonLine(line)
        }
        var unreadable = 0
        func report(_ error: JobStoreError) {
            unreadable += 1
            FileHandle.standardError.write(Data("jobstore: skipped: \(error)\n".utf8))
        }
        var progress = Progress("exported")
        var count = 0
        var pipelines = 0
        var controls = 0  // queue and schedule lines
        var buffer = ""
        func emit(_ line: String) {
            buffer += line + "\n"
            if buffer.utf8.count > 1 << 16 {
                sink.write(Data(buffer.utf8))
                buffer = ""
            }
            progress.update(count + pipelines + controls)
        }
        let only = state.flatMap(JobState.init(name:))
        try await opened.forEachPage(matching: JobFilter(state: only), unreadable: report) { jobs in
            // With --state, no pipeline step's job: those travel with their pipeline.
            for job in jobs where only == nil || job.pipeline == nil {
                emit(try await exported(job))
                count += 1
            }
        }
        if only == nil {
            var cursor: PipelineCursor?
            repeat {
                let page = try await store.pipelines(in: nil, order: .oldestFirst, limit: 100, after: cursor)
                for pipeline in page.pipelines {
                    guard let details = try await store.pipelineDetails(pipeline.id) else { continue }  // deleted meanwhile
                    emit(try jsonLine(PipelineJSON(details)))
                    pipelines += 1
                }
                cursor = page.next
            } while cursor != nil
            // The queues' controls and the schedules last: import restores them as they were.
            for queue in try await store.queues() {
                guard let line = QueueJSON(queue) else { continue }
                emit(try jsonLine(line))
                controls += 1
            }
            for schedule in try await store.schedules() {
                emit(try jsonLine(ScheduleJSON(schedule)))
                controls += 1
            }
        }
        sink.write(Data(buffer.utf8))
        progress.finish()
        if let output, let partial {
            try sink.close()
            // rename(2) replaces a file in one step and refuses to replace a directory.
            if rename(partial, output) != 0 {
                let reason = String(cString: strerror(errno))
                throw CommandFailure("cannot rename \(partial) to \(output): \(reason); the export is complete in \(partial)")
            }
            print("exported \(count.grouped) jobs, \(pipelines.grouped) pipelines and \(controls.grouped) queue controls and schedules to \(output)")
        }
        if unreadable > 0 {
            throw CommandFailure("\(unreadable) unreadable record\(unreadable == 1 ? " was" : "s were") skipped (listed above); the rest was exported")
        }
    }
}

/// `jobstore import PATH|URL FILE`: JSON lines in batches, reporting each committed batch.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read jobs, pipelines, queue controls and schedules from JSON lines (as `export` writes them) in batches.",
        discussion: "After each committed batch a line says how many jobs and pipelines are committed and the last id: if the import is interrupted, everything up to that id is in the store. A pipeline's jobs must come before it (as `export` writes them); its counts, state and remaining dependencies are recounted from them.")

    @Argument(help: "The store: its directory, or a PostgreSQL URL (postgres://user@host:port/database).")
    var path: String
    @Argument(help: "The JSON-lines file ('-' for stdin).")
    var file: String
    @Option(parsing: .unconditional, help: "Jobs or pipelines per transaction.")
    var batchSize = 1000
    @Flag(help: "Create the store if the directory (or the PostgreSQL database) holds none (so a mistyped path is an error, not a new store).")
    var create = false
    @Flag(help: "Print each progress line and the summary as a JSON object.")
    var json = false
    @Flag(help: "Commit nothing: check every line — each job against the store's rules, in a transaction rolled back; each pipeline decoded only (its jobs are not there) — and name every bad one.")
    var dryRun = false

    func validate() throws {
        guard Validation.enabled else { return }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if file != "-" && !FileManager.default.fileExists(atPath: file) { throw ValidationError("\(file) does not exist") }
        if !create && !isURL && !FileManager.default.fileExists(atPath: path + "/data.mdb") {
            throw ValidationError("\(path) holds no store; give --create to make one there")
        }
    }

    /// Whether the store is given as a PostgreSQL URL.
    var isURL: Bool { StoreOptions.isURL(path) }

    func run() async throws {
        let input = try LineReader(path: file == "-" ? nil : file)
        let decoder = JSONDecoder()
        if isURL {
            // A dry run never creates the schema: it checks against a database that has one.
            return try await OpenedStore.with(try StoreOptions.parse([path]), writable: true, creatingSchema: create && !dryRun) { opened in
                try await dryRun ? check(input, opened.store, decoder) : load(input, opened.store, decoder)
            }
        }
        var options = JobStoreOptions(cache: CacheOptions(enabled: false))
        if dryRun {
            // Nothing may change: an existing store is not upgraded; for a new one (--create)
            // the lines are checked against an empty store in a temporary directory.
            options.upgradesFormat = false
            if access(path + "/data.mdb", F_OK) != 0 {
                let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-import-check-\(getpid())").path
                defer { try? FileManager.default.removeItem(atPath: scratch) }
                let store = try JobRepository(path: scratch, options: JobStoreOptions(durability: .noSync, cache: CacheOptions(enabled: false)))
                defer { store.close() }
                return try await check(input, store, decoder)
            }
            let store = try JobRepository(path: path, options: options)
            defer { store.close() }
            return try await check(input, store, decoder)
        }
        let store = try JobRepository(path: path, options: options)
        defer { store.close() }
        try await load(input, store, decoder)
    }

    /// Restores the lines in batches of `batchSize`, each one transaction, saying after each
    /// what is committed.
    func load(_ input: LineReader, _ store: any AdministrableStore, _ decoder: JSONDecoder) async throws {
        var lines: [Int] = []  // the line of each item of the batch
        /// Where a failed batch went wrong: the line of the job the error names, if it names one.
        func place(of error: JobStoreError) -> String {
            // The last: of two lines with one id, the second is the one refused.
            let index = error.jobID.flatMap { id in batch.lastIndex { $0.id == id.description } }
            return index.map { "line \(lines[$0])" } ?? "in the batch ending at line \(lineNumber)"
        }
        var batch: [ExportLine] = []
        var committed = (jobs: 0, pipelines: 0, controls: 0)
        var lineNumber = 0
        func summary() -> String {
            let jobs = "\(committed.jobs.grouped) job\(committed.jobs == 1 ? "" : "s")"
            var parts = [jobs]
            if committed.pipelines > 0 { parts.append("\(committed.pipelines.grouped) pipeline\(committed.pipelines == 1 ? "" : "s")") }
            if committed.controls > 0 { parts.append("\(committed.controls.grouped) queue control\(committed.controls == 1 ? "" : "s") or schedule\(committed.controls == 1 ? "" : "s")") }
            return parts.count == 1 ? jobs : parts.dropLast().joined(separator: ", ") + " and " + (parts.last ?? "")
        }
        func commit() async throws {
            guard let last = batch.last else { return }
            try await store.restore(batch, actor: toolActor, dryRun: false)
            for item in batch {
                switch item {
                case .job: committed.jobs += 1
                case .pipeline: committed.pipelines += 1
                case .queue, .schedule: committed.controls += 1
                }
            }
            // Written at once (not buffered), so an interrupted import has said what is safe.
            report("committed \(summary()), last id \(last.id)", ["last_id": .string(last.id)])
            batch = []
            lines = []
        }
        /// A progress line, or with --json the counts and `extra` as one JSON object.
        func report(_ text: String, _ extra: [String: JSONValue]) {
            var object = extra
            object["jobs"] = .count(committed.jobs)
            object["pipelines"] = .count(committed.pipelines)
            object["controls"] = .count(committed.controls)
            let line = json ? (try? jsonLine(object)) ?? text : text
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        while let line = try input.next() {
            lineNumber += 1
            if ExportLine.isBlank(line) { continue }
            do {
                batch.append(try ExportLine(line, decoder))
                lines.append(lineNumber)
                if batch.count == batchSize { try await commit() }
            } catch let error as JobStoreError {
                throw CommandFailure("\(file) \(place(of: error)): \(error); \(summary()) were committed before it")
            } catch let error as LineError {
                throw CommandFailure("\(file) line \(lineNumber): \(error); \(summary()) were committed before it")
            }
        }
        do {
            try await commit()
        } catch let error as JobStoreError {
            throw CommandFailure("\(file) \(place(of: error)): \(error); \(summary()) were committed before it")
        }
        report("imported \(summary())", ["done": true])
    }

    /// `--dry-run`: every line decoded, each job restored in a transaction that is rolled back;
    /// each bad line named on stderr; a summary; exit 1 if any line is bad.
    func check(_ input: LineReader, _ store: any AdministrableStore, _ decoder: JSONDecoder) async throws {
        var (lineNumber, jobs, pipelines, controls, bad) = (0, 0, 0, 0, 0)
        var existing: [Int] = []  // lines whose job is in the store already: summed up, not one error each
        while let line = try input.next() {
            lineNumber += 1
            if ExportLine.isBlank(line) { continue }
            do {
                let item = try ExportLine(line, decoder)
                if case .job(let job, _) = item, try await store.job(job.id) != nil {
                    existing.append(lineNumber)
                    continue
                }
                // A pipeline is only decoded: its jobs are not in the store during a dry run.
                if case .pipeline = item {
                    pipelines += 1
                    continue
                }
                try await store.restore([item], actor: toolActor, dryRun: true)
                if case .job = item { jobs += 1 } else { controls += 1 }
            } catch {
                bad += 1
                FileHandle.standardError.write(Data("jobstore: \(file) line \(lineNumber): \(error)\n".utf8))
            }
        }
        if !existing.isEmpty {
            let shown = existing.prefix(10).map(String.init).joined(separator: ", ") + (existing.count > 10 ? ", …" : "")
            FileHandle.standardError.write(Data(
                "jobstore: \(existing.count.grouped) job\(existing.count == 1 ? " is" : "s are") already in \(path) (line\(existing.count == 1 ? "" : "s") \(shown)): import into another store, or delete them first\n".utf8))
        }
        let text = "checked \(lineNumber.grouped) lines: \(jobs.grouped) jobs and \(pipelines.grouped) pipelines\(controls > 0 ? " and \(controls.grouped) queue controls and schedules" : "") would be imported, \(existing.count.grouped) already in the store, \(bad.grouped) bad line\(bad == 1 ? "" : "s"); nothing committed"
        print(json
            ? try jsonLine([
                "lines": .count(lineNumber), "jobs": .count(jobs), "pipelines": .count(pipelines), "controls": .count(controls), "existing": .count(existing.count), "bad_lines": .count(bad),
            ] as [String: JSONValue])
            : text)
        if bad > 0 || !existing.isEmpty { throw ExitCode(1) }
    }
}

/// The lines of a file or of stdin, read a block at a time (a file of any size is never held in
/// memory whole). Lines come without their newline.
final class LineReader {
    private let descriptor: Int32
    private let name: String
    private var buffer: [UInt8] = []
    private var start = 0
    private var ended = false

    /// Opens `path`, or stdin when `nil`.
    init(path: String?) throws {
        name = path ?? "stdin"
        if let path {
            descriptor = open(path, O_RDONLY)
            if descriptor < 0 { throw CommandFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
        } else {
            descriptor = 0
        }
    }

    deinit { if descriptor != 0 { close(descriptor) } }

    /// The next line, or `nil` at the end of the input.
    func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                defer { start = newline + 1 }
                return buffer[start..<newline]
            }
            if ended {
                guard start < buffer.count else { return nil }
                defer { start = buffer.count }
                return buffer[start...]
            }
            buffer.removeFirst(start)
            start = 0
            var block = [UInt8](repeating: 0, count: 1 << 16)
            let count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw CommandFailure("cannot read \(name): \(String(cString: strerror(errno)))")
            }
            if count == 0 { ended = true } else { buffer += block.prefix(count) }
        }
    }
}

/// `jobstore prune PATH --state S --older-than D`.
struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished jobs and pipelines created, or finished, longer ago than a time, and old history events, in bounded batches.",
        discussion: """
            --older-than selects by creation time, --finished-before by when they finished (idx.finished). A pipeline's \
            steps' jobs are deleted with their pipeline (a finished pipeline in that state), never alone. \
            --history-before deletes the history's events recorded before a time (jobs keep their own timelines); \
            it can be given alone or with a job prune.
            """)

    @OptionGroup var store: StoreOptions
    @Option(parsing: .unconditional, help: "succeeded, failed or cancelled.", completion: .list(["succeeded", "failed", "cancelled"]))
    var state: String?
    @Option(parsing: .unconditional, help: "Jobs and pipelines created longer ago than this (e.g. 7d, 12h).")
    var olderThan: String?
    @Option(parsing: .unconditional, help: "Jobs and pipelines that finished before this: a duration ago (7d) or a time (2026-11-23, 2026-11-23T10:00:00Z).")
    var finishedBefore: String?
    @Option(parsing: .unconditional, help: "History events recorded before this: a duration ago (7d) or a time.")
    var historyBefore: String?
    @Flag(help: "Only count what would be deleted.")
    var dryRun = false
    @Option(parsing: .unconditional, help: "Job deletions per transaction (pipelines: a tenth of it, at least 1; history events: 10,000 per transaction).")
    var batchSize = 1000

    func validate() throws {
        guard Validation.enabled else { return }
        if let state {
            guard let parsed = JobState(name: state), parsed.isTerminal else {
                throw ValidationError("--state must be succeeded, failed or cancelled, not '\(state)'")
            }
            guard (olderThan == nil) != (finishedBefore == nil) else {
                throw ValidationError("give either --older-than (creation time) or --finished-before (finish time)")
            }
        } else if olderThan != nil || finishedBefore != nil {
            throw ValidationError("--older-than and --finished-before need --state")
        } else if historyBefore == nil {
            throw ValidationError("give --state with --older-than or --finished-before, or --history-before, or both")
        }
        if let olderThan { _ = try parseDuration(olderThan) }
        if let finishedBefore { _ = try parseTime(finishedBefore) }
        if let historyBefore { _ = try parseTime(historyBefore) }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() async throws {
        var output: [String: JSONValue] = [:]
        var lines: [String] = []
        let verb = dryRun ? "would delete" : "deleted"
        let key = dryRun ? "would_delete" : "deleted"
        let selection: PruneSelection? = try state.map { _ in
            if let finishedBefore { return .finishedBefore(try parseTime(finishedBefore)) }
            return .createdBefore(Timestamp.now.adding(.zero - (try parseDuration(olderThan ?? "0s"))))
        }
        let historyCutoff = try historyBefore.map(parseTime)
        try await OpenedStore.with(store, writable: !dryRun, upgrading: !dryRun) { opened in
            if let name = self.state, let state = JobState(name: name), let selection {
                let (count, pipelines) = try await opened.store.prune(state, selection, batchSize: batchSize, dryRun: dryRun)
                let byFinish = if case .finishedBefore = selection { true } else { false }
                let selector = byFinish ? "finished_before" : "created_before"
                output["state"] = .string(state.description)
                output[selector] = .int(selection.cutoff.microseconds)
                output[selector + "_iso"] = .string(selection.cutoff.iso)
                output[key] = .count(count)
                output[key + "_pipelines"] = .count(pipelines)
                lines.append("\(verb) \(count.grouped) \(state) job\(count == 1 ? "" : "s") and \(pipelines.grouped) \(state) pipeline\(pipelines == 1 ? "" : "s") \(byFinish ? "finished" : "created") before \(selection.cutoff)")
            }
            if let cutoff = historyCutoff {
                let events = dryRun ? try await opened.store.countHistory(before: cutoff) : try await opened.store.pruneHistory(before: cutoff)
                output["history_before"] = .int(cutoff.microseconds)
                output["history_before_iso"] = .string(cutoff.iso)
                output[key + "_events"] = .count(events)
                lines.append("\(verb) \(events.grouped) history event\(events == 1 ? "" : "s") recorded before \(cutoff)")
            }
        }
        if store.json {
            try printJSON(output)
        } else {
            for line in lines { print(line) }
        }
    }
}

/// Commits `body`, or with `dryRun` rehearses it in a transaction that is rolled back (the
/// same checks and cascades, nothing written). Every change of the admin tool goes through
/// here, so every event it records names the tool as its actor (``toolActor``).
func applying<T>(_ store: JobRepository, dryRun: Bool, _ body: (JobTransaction) throws -> T) throws -> T {
    func acting(_ txn: JobTransaction) throws -> T {
        txn.actor = toolActor
        return try body(txn)
    }
    return dryRun ? try store.rehearse(acting) : try store.write(acting)
}

/// Who the tool's changes are by, in the history: "jobstore tool (ada@build-1, pid 4711)".
let toolActor: String = {
    let user = ProcessInfo.processInfo.environment["USER"] ?? getpwuid(geteuid()).flatMap { String(validatingCString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
    return "jobstore tool (\(user)@\(ProcessInfo.processInfo.hostName), pid \(getpid()))"
}()

/// Opens the store for a command that changes it. A dry run opens it writable too (its
/// changes are rehearsed in a transaction that is rolled back) but does not upgrade a store of
/// an older format, which the open of a real run does.
func openForChange(_ options: StoreOptions, dryRun: Bool) throws -> JobRepository {
    try options.open(writable: true, upgrading: !dryRun)
}

/// Applies one operator's change to each id (each in its own transaction, or with `dryRun`
/// rehearsed and rolled back), on either backend, reporting each — a line of text, or with
/// `--json` a JSON line `{"id", "ok", "kind", "state" | "error"}`; exit 1 if any failed. An id
/// that is not a job's but a pipeline's gets the change as a pipeline (`pipelinesOnly`: only
/// pipelines, a job's id refused).
func changeEach(_ options: StoreOptions, _ texts: [String], _ change: OperatorChange, dryRun: Bool, pipelinesOnly: Bool = false) async throws {
    let ids = try parseIDs(texts)
    var failures = 0
    try await OpenedStore.with(options, writable: true, upgrading: !dryRun) { opened in
        for id in ids {
            do {
                if pipelinesOnly, try await opened.store.job(id) != nil {
                    throw CommandFailure("\(id) is a job, not a pipeline; `jobstore delete` deletes jobs")
                }
                let outcome = try await opened.store.apply(change, to: id, actor: toolActor, dryRun: dryRun)
                if options.json {
                    var line: [String: JSONValue] = [
                        "id": .string(id.description), "ok": true, "kind": .string(outcome.isPipeline ? "pipeline" : "job"), "state": .string(outcome.state),
                    ]
                    if dryRun { line["dry_run"] = true }
                    print(try jsonLine(line))
                } else {
                    let what = outcome.isPipeline ? "pipeline " : ""
                    let after = outcome.state == "deleted" ? "" : dryRun ? ", then \(outcome.state)" : ", now \(outcome.state)"
                    print(dryRun ? "\(id): \(what)would be \(change.done)\(after) (--dry-run: nothing changed)" : "\(id): \(what)\(change.done)\(after)")
                }
            } catch {
                failures += 1
                try reportFailure(id, error, json: options.json)
            }
        }
    }
    if failures > 0 { throw ExitCode(1) }
}

/// One id a command could not change: a JSON line (with --json) and the error on stderr,
/// naming the id once.
func reportFailure(_ id: JobID, _ error: any Error, json: Bool) throws {
    let message = "\(error)"
    if json { print(try jsonLine(["id": .string(id.description), "ok": false, "error": .string(message)] as [String: JSONValue])) }
    FileHandle.standardError.write(Data("jobstore: \(message.contains(id.description) ? message : "\(id): \(message)")\n".utf8))
}

/// `jobstore requeue PATH (--stuck | ID… | - | filters)`.
struct Requeue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put jobs back in line: running jobs whose lease expired (--stuck), the given ones, or those a filter selects.",
        discussion: "A running job goes back to pending (its worker's outcome will be refused); a pending one becomes runnable now; a failed or cancelled one is retried. Filters: --state, --queue, --name, --created-before, --finished-before; --dry-run counts first.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: BulkSelection
    @Flag(help: "Every running job whose lease expired (its worker died).")
    var stuck = false
    @Argument(help: "Job ids, or '-' to read them from stdin.")
    var ids: [String] = []

    func validate() throws {
        guard Validation.enabled else { return }
        if stuck {
            if !ids.isEmpty || selection.filtered { throw ValidationError("--stuck takes no ids and no filters") }
        } else {
            try requireIDsOrFilters(ids, selection, or: ", or --stuck")
        }
    }

    func run() async throws {
        if selection.filtered {
            try await changeAll(store, selection, .requeue)
        } else if !stuck {
            try await changeEach(store, try givenIDs(ids), .requeue, dryRun: selection.dryRun)
        } else {
            let dryRun = selection.dryRun
            let rescued = try await OpenedStore.with(store, writable: true, upgrading: !dryRun) { opened in
                try await opened.store.requeueExpiredLeases(batchSize: 1000, actor: toolActor, dryRun: dryRun)
            }
            for job in rescued { print("\(job.id): lease expired, \(dryRun ? "would be" : "now") \(job.state)") }
            let noun = "stuck job\(rescued.count == 1 ? "" : "s")"
            print(dryRun ? "would requeue \(rescued.count.grouped) \(noun) (none changed: --dry-run)" : "requeued \(rescued.count.grouped) \(noun)")
        }
    }
}

/// `jobstore cancel PATH (ID… | - | filters)`.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel waiting, pending or running jobs (by id or filter), or every unfinished step of a pipeline.",
        discussion: "Cancelling a pipeline step also cancels the steps that depend on it. Filters: --state, --queue, --name, --created-before, --finished-before; --dry-run counts first.")
    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: BulkSelection
    @Argument(help: "Job or pipeline ids, or '-' to read them from stdin.")
    var ids: [String] = []

    func validate() throws {
        guard Validation.enabled else { return }
        try requireIDsOrFilters(ids, selection)
    }

    func run() async throws {
        if selection.filtered {
            try await changeAll(store, selection, .cancel)
        } else {
            try await changeEach(store, try givenIDs(ids), .cancel, dryRun: selection.dryRun)
        }
    }
}

/// `jobstore retry PATH (ID… | - | filters)`.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put failed or cancelled jobs back to pending (by id or filter), with one more attempt; or re-run a pipeline's failed and cancelled steps.",
        discussion: "A pipeline step whose dependencies have not all succeeded goes back to waiting instead; the steps it cancelled wait for it again. Filters: --state, --queue, --name, --created-before, --finished-before; --dry-run counts first.")
    @OptionGroup var store: StoreOptions
    @OptionGroup var selection: BulkSelection
    @Argument(help: "Job or pipeline ids, or '-' to read them from stdin.")
    var ids: [String] = []

    func validate() throws {
        guard Validation.enabled else { return }
        try requireIDsOrFilters(ids, selection)
    }

    func run() async throws {
        if selection.filtered {
            try await changeAll(store, selection, .retry)
        } else {
            try await changeEach(store, try givenIDs(ids), .retry, dryRun: selection.dryRun)
        }
    }
}
