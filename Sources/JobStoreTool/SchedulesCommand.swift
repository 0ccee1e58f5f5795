import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore schedules …`: the periodic jobs registered in the store; run one now.
struct Schedules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the periodic jobs schedulers registered in the store; run one now.",
        subcommands: [List.self, RunNow.self], defaultSubcommand: List.self)

    /// `jobstore schedules run-now NAME`.
    struct RunNow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run-now",
            abstract: "Enqueue a periodic job's job to run at once (its ticks go on as before), recorded in the history as the tool's.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The schedule's name (`jobstore schedules` lists them).")
        var name: String
        @Flag(help: "Say what would be enqueued; change nothing.")
        var dryRun = false

        func run() async throws {
            let job = try await OpenedStore.with(store, writable: true, upgrading: !dryRun) { opened in
                do {
                    return try await opened.store.runNow(schedule: name, actor: toolActor, dryRun: dryRun)
                } catch let error as JobStoreError where error.code == .notFound || error.code == .invalidArgument {
                    throw CommandFailure(error.description)
                }
            }
            if store.json {
                var line: [String: JSONValue] = ["schedule": .string(name), "job": .string(job.id.description), "queue": .string(job.queue)]
                if dryRun { line["dry_run"] = .bool(true) }
                print(try jsonLine(line))
            } else {
                print(dryRun
                    ? "schedule \(name): job '\(job.name)' would be enqueued in queue \(job.queue) to run now (--dry-run: nothing changed)"
                    : "schedule \(name): enqueued job \(job.id) ('\(job.name)') in queue \(job.queue) to run now")
            }
        }
    }
}

extension Schedules {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the periodic jobs schedulers registered in the store, with their last and next run, and whether 'run-now' can run them.")

        @OptionGroup var store: StoreOptions

        struct Output: Encodable {
            var name, timing, timeZone, queue, job, missedTicks: String
            var lastTick, nextTick: Int64?
            var updatedAt: Int64
            var lastTickISO, nextTickISO: String?
            var updatedAtISO: String
            var runsNow: Bool

            enum CodingKeys: String, CodingKey {
                case name, timing, queue, job
                case runsNow = "run_now"
                case timeZone = "time_zone", missedTicks = "missed_ticks", lastTick = "last_tick", nextTick = "next_tick", updatedAt = "updated_at"
                case lastTickISO = "last_tick_iso", nextTickISO = "next_tick_iso", updatedAtISO = "updated_at_iso"
            }
        }

        func run() async throws {
            let schedules = try await OpenedStore.with(store) { try await $0.store.schedules() }
            if store.json {
                try printJSON(schedules.map {
                    Output(
                        name: $0.name, timing: $0.timing, timeZone: $0.timeZone, queue: $0.queue, job: $0.jobName,
                        missedTicks: $0.missedTicks.description, lastTick: $0.lastTick?.microseconds, nextTick: $0.nextTick?.microseconds,
                        updatedAt: $0.updatedAt.microseconds, lastTickISO: $0.lastTick?.iso, nextTickISO: $0.nextTick?.iso,
                        updatedAtISO: $0.updatedAt.iso, runsNow: $0.job != nil)
                })
                return
            }
            var table = Table("schedule", "timing", "time zone", "queue", "job", "missed ticks", "last run", "next run", "run-now")
            for schedule in schedules {
                table.add([
                    schedule.name, schedule.timing, schedule.timeZone, schedule.queue, schedule.jobName, schedule.missedTicks.description,
                    schedule.lastTick.map { Readable.relative($0) } ?? "-", schedule.nextTick.map { Readable.relative($0) } ?? "-",
                    schedule.job == nil ? "no (job not kept)" : "yes",
                ])
            }
            print(table.render())
            print("(\(schedules.count) schedule\(schedules.count == 1 ? "" : "s"))")
        }
    }
}
