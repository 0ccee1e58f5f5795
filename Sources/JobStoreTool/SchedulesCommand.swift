import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore schedules PATH`: the periodic jobs registered in the store.
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the periodic jobs schedulers registered in the store, with their last and next run.")

    @OptionGroup var store: StoreOptions

    struct Output: Encodable {
        var name, timing, timeZone, queue, job, missedTicks: String
        var lastTick, nextTick: Int64?
        var updatedAt: Int64
        var lastTickISO, nextTickISO: String?
        var updatedAtISO: String

        enum CodingKeys: String, CodingKey {
            case name, timing, queue, job
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
                    updatedAtISO: $0.updatedAt.iso)
            })
            return
        }
        var table = Table("schedule", "timing", "time zone", "queue", "job", "missed ticks", "last run", "next run")
        for schedule in schedules {
            table.add([
                schedule.name, schedule.timing, schedule.timeZone, schedule.queue, schedule.jobName, schedule.missedTicks.description,
                schedule.lastTick.map { Readable.relative($0) } ?? "-", schedule.nextTick.map { Readable.relative($0) } ?? "-",
            ])
        }
        print(table.render())
        print("(\(schedules.count) schedule\(schedules.count == 1 ? "" : "s"))")
    }
}
