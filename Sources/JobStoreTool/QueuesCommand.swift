import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore queues …`: list queues, pause and resume them.
struct Queues: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List queues (jobs per state, paused or not, the longest wait of a ready job); pause and resume them.",
        subcommands: [List.self, Pause.self, Resume.self, Limit.self, Unlimit.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every queue that has jobs or is paused.")
        @OptionGroup var store: StoreOptions

        struct Output: Encodable {
            var name: String
            var paused: Bool
            var pausedAt: Int64?
            var pausedAtISO: String?
            var counts: [String: Int]
            var oldestReadyAt: Int64?
            var oldestReadyAtISO: String?
            var oldestReadyWaitSeconds: Double?
            var rateLimit: RateLimitJSON?

            struct RateLimitJSON: Encodable {
                var starts: Int
                var periodSeconds: Double
                var tokens: Double

                enum CodingKeys: String, CodingKey {
                    case starts, tokens
                    case periodSeconds = "period_seconds"
                }
            }

            enum CodingKeys: String, CodingKey {
                case name, paused, counts
                case pausedAt = "paused_at", oldestReadyAt = "oldest_ready_at", oldestReadyWaitSeconds = "oldest_ready_wait_seconds"
                case pausedAtISO = "paused_at_iso", oldestReadyAtISO = "oldest_ready_at_iso"
                case rateLimit = "rate_limit"
            }
        }

        func run() async throws {
            let queues = try await OpenedStore.with(store) { try await $0.store.queues() }
            let now = Timestamp.now
            if store.json {
                try printJSON(queues.map {
                    Output(
                        name: $0.name, paused: $0.pausedAt != nil, pausedAt: $0.pausedAt?.microseconds, pausedAtISO: $0.pausedAt?.iso,
                        counts: byName($0.counts), oldestReadyAt: $0.oldestReadyAt?.microseconds, oldestReadyAtISO: $0.oldestReadyAt?.iso,
                        oldestReadyWaitSeconds: $0.oldestReadyAt.map { seconds(since: $0, now: now) },
                        rateLimit: $0.rateLimit.map { .init(starts: $0.starts, periodSeconds: $0.period.seconds, tokens: $0.tokens) })
                })
                return
            }
            var table = Table(["queue", "paused"] + JobState.allCases.map(\.description) + ["longest wait", "rate limit"])
            table.shrinkable = [0]
            table.optional = [9, 1, 2]  // rate limit, paused, waiting
            for queue in queues {
                table.add([queue.name, queue.pausedAt.map { "since \(Readable.relative($0, now: now))" } ?? "-"]
                    + JobState.allCases.map { (queue.counts[$0] ?? 0).grouped }
                    + [queue.oldestReadyAt.map { waited(since: $0, now: now) } ?? "-",
                       queue.rateLimit.map { "\($0.starts) per \(RateLimit.text(of: $0.period)) (\(Int($0.tokens)) left)" } ?? "-"])
            }
            print(table.render())
            print("(\(queues.count) queue\(queues.count == 1 ? "" : "s"))")
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a queue: no scheduler on the store claims its jobs until it is resumed; running jobs finish.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The queue.")
        var queue: String
        @Flag(help: "Pause a queue that has no jobs yet (otherwise an unknown name is refused, so a typo is not taken for success).")
        var create = false

        func run() async throws {
            try await changeQueue(
                store, queue, .pause, refuseUnknown: !create, json: ["paused": true], text: "queue \(queue) paused",
                unchanged: "queue \(queue) was already paused")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused queue; schedulers see the commit and claim its jobs.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The queue.")
        var queue: String

        func run() async throws {
            try await changeQueue(store, queue, .resume, json: ["paused": false], text: "queue \(queue) resumed", unchanged: "queue \(queue) was not paused")
        }
    }

    struct Limit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Limit a queue to N job starts per period, across every process on the store (a token bucket kept in the store).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The queue.")
        var queue: String
        @Option(parsing: .unconditional, help: "Job starts allowed per period (also the largest burst).")
        var starts: Int
        @Option(parsing: .unconditional, help: "The period, e.g. 1s, 1m, 1h.")
        var per: String
        @Flag(help: "Limit a queue that has no jobs yet (otherwise an unknown name is refused, so a typo is not taken for success).")
        var create = false

        func validate() throws {
            guard Validation.enabled else { return }
            if starts < 1 { throw ValidationError("--starts must be at least 1") }
            _ = try parseDuration(per)
        }

        func run() async throws {
            let period = try parseDuration(per)
            try await changeQueue(
                store, queue, .limit(starts: starts, per: period), refuseUnknown: !create,
                json: ["starts": .count(starts), "period_seconds": .double(period.seconds)], text: "queue \(queue): at most \(starts) starts per \(per)")
        }
    }

    struct Unlimit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a queue's rate limit.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The queue.")
        var queue: String

        func run() async throws {
            try await changeQueue(
                store, queue, .unlimit, json: ["rate_limit": .null], text: "queue \(queue): rate limit removed", unchanged: "queue \(queue) had no rate limit")
        }
    }
}

/// Applies a change to a queue in one transaction of the store (either backend) opened
/// writable, by the tool's actor. Then says what it did: `text` (or `unchanged`), or with
/// `--json` the queue's name, `changed`, and `json`. With `refuseUnknown`, a queue the store does
/// not know (no jobs, not paused, no rate limit) is refused, listing the known ones.
func changeQueue(
    _ store: StoreOptions, _ queue: String, _ change: QueueChange, refuseUnknown: Bool = false, json: [String: JSONValue], text: String,
    unchanged: String? = nil
) async throws {
    try await OpenedStore.with(store, writable: true) { opened in
        func applying(dryRun: Bool) async throws -> Bool {
            do {
                return try await opened.store.apply(change, to: queue, actor: toolActor, dryRun: dryRun)
            } catch let error as JobStoreError where error.code == .invalidArgument {
                throw ValidationError(error.description)  // a bad name or limit: a usage error
            }
        }
        if refuseUnknown {
            do {
                try await opened.store.requireQueue(queue)
            } catch let error as JobStoreError where error.code == .notFound {
                _ = try await applying(dryRun: true)  // a bad name or limit is a usage error first
                throw CommandFailure("\(error.message); give --create to set it up for jobs to come")
            }
        }
        let changed = try await applying(dryRun: false)
        print(store.json
            ? try jsonLine(json.merging(["queue": .string(queue), "changed": .bool(changed)]) { a, _ in a })
            : changed ? text : unchanged ?? text)
    }
}
