import ArgumentParser
import Foundation
import JobStore

/// `jobstore export PATH`: jobs as JSON lines.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write jobs as JSON lines (stdout, or --output FILE).")

    @Argument(help: "The store's directory.")
    var path: String
    @Option(help: "Only jobs in this state.")
    var state: String?
    @Option(help: "Write to this file instead of stdout.")
    var output: String?

    func validate() throws {
        if let state, JobState(name: state) == nil {
            throw ValidationError("'\(state)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
        }
    }

    func run() throws {
        let store = try StoreOptions.parse([path]).open()
        defer { store.close() }
        var sink = FileHandle.standardOutput
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil) else { throw CommandFailure("cannot create \(output)") }
            sink = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        }
        var progress = Progress("exported")
        var count = 0
        var buffer = ""
        func emit(_ job: Job) throws {
            buffer += try jsonLine(JobJSON(job)) + "\n"
            count += 1
            if buffer.utf8.count > 1 << 16 {
                sink.write(Data(buffer.utf8))
                buffer = ""
            }
            progress.update(count)
        }
        if let state = state.flatMap(JobState.init(name:)) {
            var cursor: PageCursor?
            repeat {
                let page = try store.jobs(in: state, limit: 1000, after: cursor)
                for job in page.jobs { try emit(job) }
                cursor = page.next
            } while cursor != nil
        } else {
            try store.forEachJob { job in
                try emit(job)
                return true
            }
        }
        sink.write(Data(buffer.utf8))
        progress.finish()
        if output != nil { print("exported \(count.grouped) jobs to \(output ?? "")") }
    }
}

/// `jobstore import PATH FILE`: JSON lines in batches, reporting each committed batch.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read jobs from JSON lines (as `export` writes them) in batches.",
        discussion: "After each committed batch a line says how many jobs are committed and the last id: if the import is interrupted, everything up to that id is in the store.")

    @Argument(help: "The store's directory (created if missing).")
    var path: String
    @Argument(help: "The JSON-lines file ('-' for stdin).")
    var file: String
    @Option(help: "Jobs per transaction.")
    var batchSize = 1000

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if file != "-" && !FileManager.default.fileExists(atPath: file) { throw ValidationError("\(file) does not exist") }
    }

    func run() throws {
        let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
        let store = try JobRepository(path: path, options: JobStoreOptions(cache: CacheOptions(enabled: false)))
        defer { store.close() }
        let decoder = JSONDecoder()
        var batch: [Job] = []
        var committed = 0
        var lineNumber = 0
        func commit() throws {
            guard !batch.isEmpty else { return }
            let jobs = batch
            try store.write { txn in for job in jobs { try txn.restore(job) } }
            committed += jobs.count
            print("committed \(committed.grouped) jobs, last id \(jobs[jobs.count - 1].id)")
            batch = []
        }
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
            do {
                batch.append(try decoder.decode(JobJSON.self, from: Data(line)).job())
                if batch.count == batchSize { try commit() }
            } catch let error as DecodingError {
                throw CommandFailure("\(file) line \(lineNumber): not a job: \(describe(error)); \(committed.grouped) jobs were committed before it")
            } catch let error as JobStoreError {
                throw CommandFailure("\(file) around line \(lineNumber): \(error); \(committed.grouped) jobs were committed before it")
            } catch let error as CommandFailure {
                throw CommandFailure("\(file) line \(lineNumber): \(error); \(committed.grouped) jobs were committed before it")
            }
        }
        do {
            try commit()
        } catch {
            throw CommandFailure("\(file): \(error); \(committed.grouped) jobs were committed before it")
        }
        print("imported \(committed.grouped) jobs")
    }

    func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case .dataCorrupted(let context): context.debugDescription
        @unknown default: "\(error)"
        }
    }
}

/// `jobstore prune PATH --state S --older-than D`.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished jobs created longer ago than a duration, in bounded batches.")

    @OptionGroup var store: StoreOptions
    @Option(help: "succeeded, failed or cancelled.")
    var state: String
    @Option(help: "Jobs created longer ago than this (e.g. 7d, 12h).")
    var olderThan: String
    @Flag(help: "Only count what would be deleted.")
    var dryRun = false
    @Option(help: "Deletions per transaction.")
    var batchSize = 1000

    func validate() throws {
        guard let parsed = JobState(name: state), parsed.isTerminal else {
            throw ValidationError("--state must be succeeded, failed or cancelled, not '\(state)'")
        }
        _ = try parseDuration(olderThan)
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        guard let state = JobState(name: state) else { throw ValidationError("bad state") }
        let cutoff = Timestamp.now.adding(.zero - (try parseDuration(olderThan)))
        let jobs = try store.open(writable: !dryRun)
        defer { jobs.close() }
        let count = dryRun ? try jobs.count(state, createdBefore: cutoff) : try jobs.prune(state: state, createdBefore: cutoff, batchSize: batchSize)
        if store.json {
            try printJSON(["state": state.description, "created_before": cutoff.description, dryRun ? "would_delete" : "deleted": "\(count)"])
        } else {
            print("\(dryRun ? "would delete" : "deleted") \(count.grouped) \(state) job\(count == 1 ? "" : "s") created before \(cutoff)")
        }
    }
}

/// Applies one change to each id (each in its own transaction), reporting each — a line of text,
/// or with `--json` a JSON line `{"id", "ok", "state" | "error"}`; exit 1 if any failed.
func changeEach(_ options: StoreOptions, _ texts: [String], verb: String, _ change: (JobRepository, JobID) throws -> Job) throws {
    let ids = try parseIDs(texts)
    let jobs = try options.open(writable: true)
    defer { jobs.close() }
    var failures = 0
    for id in ids {
        do {
            let job = try change(jobs, id)
            print(options.json ? try jsonLine(["id": id.description, "ok": "true", "state": job.state.description]) : "\(id): \(verb), now \(job.state)")
        } catch {
            failures += 1
            if options.json { print(try jsonLine(["id": id.description, "ok": "false", "error": "\(error)"])) }
            FileHandle.standardError.write(Data("jobstore: \(id): \(error)\n".utf8))
        }
    }
    if failures > 0 { throw ExitCode(1) }
}

/// `jobstore requeue PATH (--stuck | ID …)`.
struct Requeue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put jobs back in line: running jobs whose lease expired (--stuck), or the given ones.",
        discussion: "A running job goes back to pending (its worker's outcome will be refused); a pending one becomes runnable now; a failed or cancelled one is retried.")

    @OptionGroup var store: StoreOptions
    @Flag(help: "Every running job whose lease expired (its worker died).")
    var stuck = false
    @Argument(help: "Job ids.")
    var ids: [String] = []

    func validate() throws {
        if stuck == !ids.isEmpty { throw ValidationError("give either --stuck or job ids") }
    }

    func run() throws {
        if !stuck {
            try changeEach(store, ids, verb: "requeued") { try $0.requeue($1) }
            return
        }
        let jobs = try store.open(writable: true)
        defer { jobs.close() }
        var total = 0
        while true {
            let rescued = try jobs.rescueExpiredLeases(limit: 1000)
            for job in rescued { print("\(job.id): lease expired, now \(job.state)") }
            total += rescued.count
            if rescued.count < 1000 { break }
        }
        print("requeued \(total.grouped) stuck job\(total == 1 ? "" : "s")")
    }
}

/// `jobstore cancel PATH ID …`.
struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel waiting, pending or running jobs.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Job ids.")
    var ids: [String]

    func run() throws { try changeEach(store, ids, verb: "cancelled") { try $0.cancel($1) } }
}

/// `jobstore retry PATH ID …`.
struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put failed or cancelled jobs back to pending, with one more attempt.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Job ids.")
    var ids: [String]

    func run() throws { try changeEach(store, ids, verb: "retried") { try $0.retry($1) } }
}
