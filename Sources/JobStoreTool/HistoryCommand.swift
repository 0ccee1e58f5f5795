import ArgumentParser
import Foundation
import JobStore
import JobStoreLines

/// A job's timeline as text lines: time, event, state, attempts, details.
func timelineLines(_ timeline: JobTimeline) -> [String] {
    var lines: [String] = []
    if timeline.dropped > 0 { lines.append("  (\(timeline.dropped) older event\(timeline.dropped == 1 ? "" : "s") dropped)") }
    for event in timeline.events {
        let text = "  \(event.at)  \(event.kind.description.padding(toLength: 14, withPad: " ", startingAt: 0)) \(event.state.description.padding(toLength: 9, withPad: " ", startingAt: 0)) try \(event.attempts)"
        let more = event.details
        lines.append(more.isEmpty ? text : text + "  " + more)
    }
    return lines
}

extension Jobs {
    /// `jobstore jobs history PATH`: every job's events in commit order, from the history index.
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the events of all jobs in commit order, from the history index (to rebuild what happened after an incident).",
            discussion: """
                Each line: the event's position (pass it to --after to go on from there), time, job, event, the state it \
                left the job in, attempts, and details. The history keeps events until pruned (the scheduler's \
                historyRetention, a week by default; `jobstore prune --history`). --follow prints new events as any \
                process commits them, from now on (like `tail -f`); with --since or --after it first prints the \
                events from there.
                """)

        @OptionGroup var store: StoreOptions
        @Option(parsing: .unconditional, help: "Start at events recorded at or after: 2026-11-23, 2026-11-23T10:00:00Z, a time as --json or --utc prints it, or a duration ago (2h).")
        var since: String?
        @Option(parsing: .unconditional, help: "Start after this position (printed with each event).")
        var after: String?
        @Option(
            help: "Only events of these kinds, comma-separated: \(JobEvent.Kind.allCases.map(\.description).joined(separator: ", ")).",
            completion: .list(JobEvent.Kind.allCases.map(\.description)))
        var kind: String?
        @Option(parsing: .unconditional, help: "At most this many events (default 1000; with --follow, no limit): the last line then says where to go on.")
        var limit: Int?
        @Flag(help: "Keep printing new events as they are committed, from now on (stop with Ctrl-C); with --since or --after, from there.")
        var follow = false

        func validate() throws {
            guard Validation.enabled else { return }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            if since != nil && after != nil { throw ValidationError("give --since or --after, not both") }
            if let after { do { _ = try HistoryPosition(parsing: after) } catch { throw ValidationError("\(error)") } }
            if let since { _ = try parseTime(since) }
            _ = try kinds()
        }

        func kinds() throws -> Set<JobEvent.Kind>? {
            guard let kind else { return nil }
            let names = kind.split(separator: ",")
            if names.isEmpty { throw ValidationError("--kind needs at least one event kind, e.g. failed,rescued") }
            return Set(try names.map { name in
                guard let kind = JobEvent.Kind(name: String(name)) else {
                    throw ValidationError("'\(name)' is not an event kind; kinds: \(JobEvent.Kind.allCases.map(\.description).joined(separator: ", "))")
                }
                return kind
            })
        }

        func run() async throws {
            try await OpenedStore.with(store) { opened in try await print(from: opened) }
        }

        func print(from opened: OpenedStore) async throws {
            let jobs = opened.store
            let kinds = try kinds()
            var after = try self.after.map(HistoryPosition.init(parsing:))
            let since = try self.since.map(parseTime)
            let limit = self.limit ?? (follow ? Int.max : 1000)
            if follow && after == nil && since == nil {
                after = try await jobs.lastHistoryPosition()  // from now on, as `tail -f` (an empty history: from its start)
            }
            var printed = 0
            var announced = false
            // Wake-ups for --follow: each commit of any process (inotify on the data file), and
            // once a second — inotify can report a commit's first page write before the commit
            // is visible, and a store written through its map gives no event at all.
            let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let commits = opened.lmdb?.commitSignals()
            let feeders = follow ? [
                Task { if let commits { for await _ in commits { wake.yield() } } },
                Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(1))
                        wake.yield()
                    }
                },
            ] : []
            defer { for feeder in feeders { feeder.cancel() } }
            var wakeup = wakeups.makeAsyncIterator()
            while true {
                let page = try await jobs.history(after: after, since: after == nil ? since : nil, limit: 1000)
                for entry in page.entries where kinds?.contains(entry.event.kind) ?? true {
                    if printed == limit {
                        if !store.json { Swift.print("more: --after \(after?.description ?? "")") }
                        return
                    }
                    Swift.print(store.json ? try jsonLine(EventJSON(entry.event, position: entry.position, job: entry.jobID)) : line(entry))
                    printed += 1
                    after = entry.position
                }
                after = page.entries.last?.position ?? after
                fflush(nil)  // each page out at once, also into a pipe
                if page.next != nil { continue }
                if !follow { return }
                if !announced {
                    // On stderr, so stdout stays the events alone (a pipe, --json).
                    FileHandle.standardError.write(Data("jobstore: following: new events as they are committed (Ctrl-C stops)\n".utf8))
                    announced = true
                }
                _ = await wakeup.next()
            }
        }

        func line(_ entry: HistoryEntry) -> String {
            let event = entry.event
            let columns = [
                entry.position.description.padding(toLength: 20, withPad: " ", startingAt: 0), event.at.description,
                event.kind.isQueueEvent ? "(queue)".padding(toLength: 36, withPad: " ", startingAt: 0) : entry.jobID.description,
                event.kind.description.padding(toLength: 15, withPad: " ", startingAt: 0),
                // A queue event is about no job: no state, no attempts.
                (event.kind.isQueueEvent ? "" : event.state.description).padding(toLength: 9, withPad: " ", startingAt: 0),
                event.kind.isQueueEvent ? "     " : "try \(event.attempts)",
            ]
            let more = event.details
            return columns.joined(separator: "  ") + (more.isEmpty ? "" : "  " + more)
        }
    }
}
