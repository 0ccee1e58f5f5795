import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore stats PATH|URL`: jobs per state and per queue, pipelines per state; on LMDB also
/// the environment and every database.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show jobs per state and queue, pipelines per state, expired leases and the longest wait; on LMDB also the environment and every database.")

    @OptionGroup var store: StoreOptions

    struct Output: Encodable {
        struct DatabaseJSON: Encodable {
            var name: String
            var entries, depth, branchPages, leafPages, overflowPages, bytes: Int
        }
        /// The directory, or "PostgreSQL at host:port/database".
        var path: String
        var states: [String: Int]
        var queues: [String: [String: Int]]
        var pipelines: [String: Int]
        var expiredLeases: Int
        var longestReadyWaitSeconds: Double?
        /// On disk: the data file (LMDB), the tables with their indexes (PostgreSQL).
        var bytes: Int
        // LMDB only:
        var environment: EnvironmentInfo?
        var fileBytes: Int?
        var databases: [DatabaseJSON]?
        var freePages: Int?
        /// Absent when the store was read without its lock file (another user's store).
        var otherReadTransactions: Int?
    }

    func run() async throws {
        try await OpenedStore.with(store) { opened in
            let jobs = opened.store
            let counts = try await jobs.counts()
            let queues = try await jobs.queueDepths()
            let pipelines = try await jobs.pipelineCounts()
            let expired = try await jobs.expiredLeaseCount()
            let oldestReady = try await jobs.queues().compactMap(\.oldestReadyAt).min()
            var output = Output(
                path: opened.location, states: byName(counts), queues: queues.mapValues(byName), pipelines: byName(pipelines),
                expiredLeases: expired, longestReadyWaitSeconds: oldestReady.map { seconds(since: $0) }, bytes: try await jobs.storageBytes())
            if let lmdb = opened.lmdb {
                output.environment = try lmdb.environmentInfo()
                output.fileBytes = ((try? FileManager.default.attributesOfItem(atPath: store.path + "/data.mdb"))?[.size] as? Int) ?? 0
                output.databases = try lmdb.databaseStatistics().map {
                    .init(name: $0.name, entries: $0.statistics.entries, depth: $0.statistics.depth, branchPages: $0.statistics.branchPages,
                          leafPages: $0.statistics.leafPages, overflowPages: $0.statistics.overflowPages, bytes: $0.statistics.bytes)
                }
                output.freePages = try lmdb.freePages()
                // Without the lock (another user's store) there is no reader table to count.
                output.otherReadTransactions = store.unwritableLock() != nil
                    ? nil : try lmdb.readers().filter { $0.pid != Int(getpid()) && $0.transaction != nil }.count
            }
            if store.json {
                try printJSON(output)
            } else {
                print(render(output, oldestReady: oldestReady, counts: counts, queues: queues, pipelines: pipelines))
            }
        }
    }

    func render(
        _ output: Output, oldestReady: Timestamp?, counts: [JobState: Int], queues: [String: [JobState: Int]], pipelines: [PipelineState: Int]
    ) -> String {
        var lines: [String] = []
        let expired = output.expiredLeases
        if let info = output.environment, let freePages = output.freePages {
            lines.append("Environment \(store.path)")
            lines.append("  map size         \(info.mapSize.bytes)")
            lines.append("  used             \(info.usedBytes.bytes) (\((info.lastPageNumber + 1).grouped) pages of \(info.pageSize) B)")
            lines.append("  file size        \((output.fileBytes ?? 0).bytes)")
            lines.append("  last transaction \(info.lastTransactionID)")
            lines.append("  free pages       \(freePages.grouped) (\((freePages * info.pageSize).bytes) reused before the file grows)")
            if let othersReading = output.otherReadTransactions {
                lines.append("  readers          \(othersReading) other read transaction\(othersReading == 1 ? "" : "s") now; \(info.readersInUse) of \(info.maxReaders) slots used (this command's included)")
            } else {
                lines.append("  readers          unknown (read without the lock file, which holds the reader table)")
            }
        } else {
            lines.append("Job store in \(output.path)")
            lines.append("  size             \(output.bytes.bytes) (its tables with their indexes)")
        }
        lines.append("  expired leases   \(expired.grouped)\(expired > 0 ? " (their workers stopped: `jobstore requeue --stuck`, or a scheduler, puts them back)" : "")")
        lines.append("  longest wait     \(oldestReady.map { waited(since: $0) + " (the oldest ready job)" } ?? "- (no job is ready)")")
        if let databases = output.databases {
            lines.append("")
            var table = Table("database", "entries", "depth", "branch", "leaf", "overflow", "size")
            for stats in databases {
                table.add([stats.name, stats.entries.grouped, "\(stats.depth)", stats.branchPages.grouped, stats.leafPages.grouped, stats.overflowPages.grouped, stats.bytes.bytes])
            }
            lines.append(table.render())
        }
        lines.append("")
        var states = Table("state", "jobs")
        states.states = [0]
        for state in JobState.allCases { states.add([state.description, (counts[state] ?? 0).grouped]) }
        states.add(["total", counts.values.reduce(0, +).grouped])
        lines.append(states.render())
        let named = queues.filter { !$0.value.values.allSatisfy { $0 == 0 } }
        if !named.isEmpty {
            lines.append("")
            var byQueue = Table(["queue"] + JobState.allCases.map(\.description))
            for queue in named.keys.sorted() {
                byQueue.add([queue] + JobState.allCases.map { (named[queue]?[$0] ?? 0).grouped })
            }
            lines.append(byQueue.render())
        }
        lines.append("")
        var byState = Table("pipeline state", "pipelines")
        for state in PipelineState.allCases { byState.add([state.description, (pipelines[state] ?? 0).grouped]) }
        byState.add(["total", pipelines.values.reduce(0, +).grouped])
        lines.append(byState.render())
        return lines.joined(separator: "\n")
    }
}

extension Table {
    init(_ headers: [String]) { self.headers = headers }
}

/// `jobstore jobs …`: list and show jobs.
struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, search and show jobs; group recent failures by error; print the history of their events.",
        subcommands: [List.self, Show.self, Errors.self, History.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List jobs by creation time, answered from the indexes, a page at a time.",
            discussion: "With --state the listing reads idx.state_created, otherwise idx.created; --queue filters that range.")

        @OptionGroup var store: StoreOptions
        @Option(
            help: "Only jobs in this state: \(JobState.allCases.map(\.description).joined(separator: ", ")).",
            completion: .list(JobState.allCases.map(\.description)))
        var state: String?
        @Option(parsing: .unconditional, help: "Only jobs of this queue.")
        var queue: String?
        @Option(parsing: .unconditional, help: "Only jobs created at or after: 2026-11-23, 2026-11-23T10:00:00Z, a time as --json or --utc prints it, or a duration ago (2h).")
        var since: String?
        @Option(parsing: .unconditional, help: "Only jobs created before (same forms as --since).")
        var until: String?
        @OptionGroup var search: SearchOptions
        @Option(parsing: .unconditional, help: "Look at most at this many jobs of the range for the page (a search that may find little): the page ends there, and --after goes on.")
        var examineAtMost: Int?
        @OptionGroup var paging: PagingOptions
        @Flag(help: "Print times in UTC instead of relative to now (\"3m ago\").")
        var utc = false

        func validate() throws {
            guard Validation.enabled else { return }
            if let state, JobState(name: state) == nil {
                throw ValidationError("'\(state)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
            }
            if let since, let until, try parseTime(since) >= parseTime(until) {
                throw ValidationError("--since \(since) is not before --until \(until): nothing could match")
            }
            if let examineAtMost, examineAtMost < 1 { throw ValidationError("--examine-at-most must be at least 1") }
        }

        struct Output: Encodable {
            var jobs: [JobJSON]
            var next: String?
            var examined: Int?
        }

        func run() async throws {
            var filter = JobFilter(
                state: state.flatMap(JobState.init(name:)), createdFrom: try since.map(parseTime),
                createdUntil: try until.map(parseTime), queue: queue, examineAtMost: examineAtMost)
            search.apply(to: &filter)
            let cursor = try paging.cursor(PageCursor.init(parsing:))
            var unreadable = 0
            let page = try await OpenedStore.with(store) { opened in
                guard let jobs = opened.lmdb else {
                    return try await opened.store.jobs(matching: filter, order: paging.order, limit: paging.limit, after: cursor)
                }
                // A record this program cannot read is skipped and said, the others listed.
                return try jobs.jobs(matching: filter, order: paging.order, limit: paging.limit, after: cursor) { error in
                    unreadable += 1
                    FileHandle.standardError.write(Data("jobstore: skipped: \(error)\n".utf8))
                }
            }
            if store.json {
                try printJSON(Output(jobs: page.jobs.map(JobJSON.init), next: page.next?.description, examined: page.examined))
            } else {
                // Run at only where it is still ahead of the job: pending or waiting.
                var table = Table("id", "state", "queue", "name", "prio", "tries", "created", "run at")
                table.states = [1]
                table.shrinkable = [3, 2]
                table.optional = [4, 5, 7]  // prio, tries, run at
                let now = Timestamp.now
                for job in page.jobs {
                    let waits = job.state == .pending || job.state == .waiting
                    table.add([
                        job.id.description, job.state.description, job.queue, job.name, "\(job.priority)",
                        "\(job.attempts)/\(job.maxAttempts)", shown(job.createdAt, utc: utc, now: now),
                        waits ? shown(job.runAt, utc: utc, now: now) : "-",
                    ])
                }
                print(table.render())
                if let examined = page.examined { print("looked at \(examined) job\(examined == 1 ? "" : "s") of the range: \(page.jobs.count) matched") }
                print(paging.footer(next: page.next, count: page.jobs.count, noun: "job"))
            }
            if unreadable > 0 { throw ExitCode(1) }  // listed the rest; the skipped ones are on stderr
        }
    }

    struct Errors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The most common errors of the jobs that failed for good lately, each with how many jobs and the newest.",
            discussion: """
                Reads the index of finished jobs (pipeline steps' jobs included) from --since, newest first, and groups \
                each job's last error message. List a group's jobs with `jobs list --state failed --error-contains TEXT`.
                """)

        @OptionGroup var store: StoreOptions
        @Option(parsing: .unconditional, help: "Jobs that failed since: a duration ago (1h, the default) or a time (2026-11-23T10:00:00Z).")
        var since = "1h"
        @Option(help: "How many messages to print, the commonest first.")
        var top = 10
        @Option(help: "Look at most at this many failed jobs, the newest first.")
        var examineAtMost = 10_000
        @Flag(help: "Print times in UTC instead of relative to now (\"3m ago\").")
        var utc = false

        func validate() throws {
            guard Validation.enabled else { return }
            _ = try parseTime(since)
            if top < 1 { throw ValidationError("--top must be at least 1") }
            if examineAtMost < 1 { throw ValidationError("--examine-at-most must be at least 1") }
        }

        struct Output: Encodable {
            struct Group: Encodable {
                var message: String
                var jobs: Int
                var latest: String
                var latest_job: String
            }
            var since: String
            var examined: Int
            var complete: Bool
            var errors: [Group]
        }

        func run() async throws {
            let since = try parseTime(self.since)
            let summary = try await OpenedStore.with(store) { opened in
                try await opened.store.commonErrors(since: since, limit: top, examineAtMost: examineAtMost)
            }
            if store.json {
                try printJSON(Output(
                    since: since.description, examined: summary.examined, complete: summary.complete,
                    errors: summary.groups.map { .init(message: $0.message, jobs: $0.count, latest: $0.latest.description, latest_job: $0.latestJob.description) }))
                return
            }
            var table = Table("jobs", "latest", "newest job", "message")
            table.shrinkable = [3]
            let now = Timestamp.now
            for group in summary.groups {
                table.add(["\(group.count)", shown(group.latest, utc: utc, now: now), group.latestJob.description, group.message])
            }
            if !summary.groups.isEmpty { print(table.render()) }
            let when = shown(since, utc: utc, now: now)
            if summary.examined == 0 {
                print("no job failed since \(when)")
            } else {
                let jobs = "\(summary.examined) job\(summary.examined == 1 ? "" : "s")"
                print(summary.complete ? "\(jobs) failed since \(when)" : "the newest \(jobs) of those that failed since \(when) (--examine-at-most)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every field of a job (its own timeout and headers too), its progress, its pipeline step and its timeline.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "The job's id.")
        var id: String

        func run() async throws {
            let id: JobID
            do { id = try JobID(parsing: self.id) } catch { throw ValidationError("\(error)") }
            try await OpenedStore.with(store) { opened in try await show(id, in: opened) }
        }

        func show(_ id: JobID, in opened: OpenedStore) async throws {
            let jobs = opened.store
            guard let job = try await jobs.job(id) else { throw CommandFailure("no job \(id) in \(opened.location)") }
            let timeline = try await jobs.events(of: id)
            let progress = try await jobs.progress(of: id)
            var step: (Pipeline, PipelineStepRecord)?
            if let reference = job.pipeline, let details = try await jobs.pipelineDetails(reference.pipeline),
                let record = details.steps.first(where: { $0.index == Int(reference.step) }) {
                step = (details.pipeline, record)
            }
            if store.json {
                var json = JobJSON(job)
                json.timeline = TimelineJSON(timeline)
                json.progress = progress
                try printJSON(json)
                return
            }
            var lines: [(String, String)] = [
                ("id", job.id.description), ("name", job.name), ("queue", job.queue), ("tenant", job.tenant ?? "-"),
                ("state", job.state.description), ("priority", "\(job.priority)"),
                ("attempts", "\(job.attempts) of \(job.maxAttempts)"), ("created", both(job.createdAt)),
                ("updated", both(job.updatedAt)), ("run at", both(job.runAt)),
                ("lease", job.lease.map { "until \(both($0.expiresAt)), owner \($0.owner)" } ?? "-"),
                ("unique key", job.uniqueKey ?? "-"),
                ("timeout", job.timeout.map { "\($0) (its own; over its handler's)" } ?? "-"),
                ("progress", progress?.description ?? "-"),
                ("headers", job.headers.isEmpty ? "-" : job.headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n")),
                ("pipeline", job.pipeline.map { reference in
                    guard let (pipeline, step) = step else { return "\(reference.pipeline) step \(reference.step) (missing)" }
                    return "\(pipeline.id) '\(pipeline.name)' v\(pipeline.version) (\(pipeline.state)), step \(step.index) '\(step.name)'"
                } ?? "-"),
            ]
            lines.append(("payload", describe(job.payload)))
            if let result = job.result { lines.append(("result", describe(result))) }
            for (label, value) in lines {
                let indented = value.replacingOccurrences(of: "\n", with: "\n" + String(repeating: " ", count: 13))
                print(label.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + indented)
            }
            print("errors       \(job.errors.isEmpty ? "-" : "")")
            for error in job.errors { print("  attempt \(error.attempt) at \(error.at): \(error.message)") }
            print("timeline     \(timeline.events.isEmpty ? "- (none recorded: the job is from before format 3)" : "")")
            for line in timelineLines(timeline) { print(line) }
        }

        /// A time in UTC and relative to now: "2026-11-23T10:00:00.000000Z (3m ago)".
        func both(_ time: Timestamp) -> String { "\(time) (\(Readable.relative(time)))" }

        func describe(_ bytes: [UInt8]) -> String {
            if bytes.isEmpty { return "(empty)" }
            if let text = Readable.text(bytes) { return "\(bytes.count) bytes, text:\n" + text }
            return "\(bytes.count) bytes, hex:\n" + Readable.hexDump(bytes)
        }
    }
}

/// `jobstore verify PATH`: records, every index and the counters.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check records, every index, the counters and every pipeline against its steps' jobs; exit 1 listing every problem.",
        discussion: "On PostgreSQL (a URL), whose database keeps rows and indexes consistent itself: the counters per queue and state against a count of the jobs, and each pipeline's step counts against its steps' jobs.")

    @OptionGroup var store: StoreOptions
    @Option(parsing: .unconditional, help: "Records or index entries per read transaction (a short snapshot each, so a live store's file does not grow).")
    var chunkSize = 10_000

    func validate() throws {
        guard Validation.enabled else { return }
        if chunkSize < 1 { throw ValidationError("--chunk-size must be at least 1") }
    }

    struct Output: Encodable {
        struct Problem: Encodable {
            var kind: String
            var job: String?
            var pipeline: String?
            var message: String
        }
        var ok: Bool
        var jobs: Int
        var pipelines: Int
        var problems: [Problem]
    }

    func run() async throws {
        try await OpenedStore.with(store) { opened in try await verify(opened) }
    }

    func verify(_ opened: OpenedStore) async throws {
        let jobs = opened.store
        let progress = Progress("verifying")
        let problems = try await jobs.verify(chunkSize: chunkSize)
        progress.finish()
        let total = try await jobs.counts().values.reduce(0, +)
        let pipelines = try await jobs.pipelineCounts().values.reduce(0, +)
        if store.json {
            try printJSON(Output(
                ok: problems.isEmpty, jobs: total, pipelines: pipelines,
                problems: problems.map {
                    .init(kind: $0.kind.rawValue, job: $0.jobID?.description, pipeline: $0.pipelineID?.description, message: $0.message)
                }))
        } else if problems.isEmpty {
            let checked = opened.lmdb == nil ? "every counter and pipeline agrees with a recount" : "every record, index entry, counter, pipeline and event is consistent"
            print("ok: \(total.grouped) job\(total == 1 ? "" : "s") and \(pipelines.grouped) pipeline\(pipelines == 1 ? "" : "s"); \(checked)")
        } else {
            for problem in problems { print(problem) }
            print("\(problems.count) problem\(problems.count == 1 ? "" : "s") found")
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}

/// `jobstore backup PATH DEST`: a consistent hot copy.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of a live store into an empty directory.",
        discussion: "The copy is written into DESTINATION.partial and renamed to DESTINATION when whole: a backup cut short leaves DESTINATION.partial, never a store that looks complete.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "The destination directory (created; must be empty if it exists).")
    var destination: String
    @Flag(help: "Leave out free pages and renumber pages (smaller, slower).")
    var compact = false

    func run() throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if destination.isEmpty { throw ValidationError("give the backup's destination directory") }
        if manager.fileExists(atPath: destination, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ValidationError("\(destination) is a file; give a new or empty directory") }
            guard (try manager.contentsOfDirectory(atPath: destination)).isEmpty else {
                throw ValidationError("\(destination) is not empty; give a new or empty directory")
            }
        }
        // Copied into a sibling directory, renamed to the destination once whole: a backup cut
        // short (killed, disk full) never leaves a destination that looks like a store.
        let partial = (destination.hasSuffix("/") ? String(destination.dropLast()) : destination) + ".partial"
        if manager.fileExists(atPath: partial) {
            throw CommandFailure("\(partial) exists: a backup to \(destination) was cut short there (or runs now). Remove it, then back up again")
        }
        let jobs = try store.open()
        defer { jobs.close() }
        do {
            try manager.createDirectory(atPath: partial, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure("cannot create the directory \(partial): \(reason(error))")
        }
        let progress = Progress("copying")
        do {
            try jobs.backup(to: partial, compact: compact)
        } catch {
            try? manager.removeItem(atPath: partial)
            throw error
        }
        progress.finish()
        // rename(2) replaces an empty directory and never a non-empty one.
        guard rename(partial, destination) == 0 else {
            throw CommandFailure("cannot rename \(partial) to \(destination): \(String(cString: strerror(errno))); the backup is whole in \(partial)")
        }
        let bytes = ((try? manager.attributesOfItem(atPath: destination + "/data.mdb"))?[.size] as? Int) ?? 0
        if store.json {
            try printJSON(["destination": .string(destination), "bytes": .count(bytes), "compact": .bool(compact)] as [String: JSONValue])
        } else {
            print("copied \(store.path) to \(destination) (\(bytes.bytes)\(compact ? ", compacted" : ""))")
        }
    }
}

/// `jobstore readers PATH`: LMDB's reader table.
struct Readers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the reader table; clear slots of dead processes.")

    @OptionGroup var store: StoreOptions
    @Flag(help: "Clear reader slots left by processes that died.")
    var clearStale = false

    func run() throws {
        let jobs = try store.open(readerTable: true)
        defer { jobs.close() }
        let cleared = clearStale ? try jobs.clearStaleReaders() : 0
        if store.json {
            struct Reader: Encodable {
                var pid: Int
                var thread: String
                /// The snapshot the slot holds, or `nil` when the slot is idle.
                var transaction: Int?
                /// This tool's own slot.
                var this: Bool
            }
            struct Output: Encodable {
                var readers: [Reader]
                var cleared: Int
            }
            let readers = try jobs.readers().map {
                Reader(pid: $0.pid, thread: $0.thread, transaction: $0.transaction, this: $0.pid == Int(getpid()))
            }
            try printJSON(Output(readers: readers, cleared: cleared))
            return
        }
        // LMDB's own text pads its header unlike its rows: a table of the same slots instead.
        let slots = try jobs.readers()
        var table = Table("pid", "thread", "snapshot", "")
        for slot in slots {
            table.add(["\(slot.pid)", slot.thread, slot.transaction.map { "transaction \($0)" } ?? "idle", slot.pid == Int(getpid()) ? "this tool" : ""])
        }
        print(table.render())
        print("(\(slots.count) reader slot\(slots.count == 1 ? "" : "s") in use)")
        if clearStale { print("cleared \(cleared) stale reader slot\(cleared == 1 ? "" : "s")") }
    }
}
