import Foundation
import JobScheduler
import JobStore
import Testing
import TestSupport

@Suite("Periodic jobs: cron parsing, ticks, one job per tick across processes, missed ticks")
struct PeriodicTests {
    func time(_ text: String) throws -> Timestamp {
        let date = try #require(ISO8601DateFormatter().date(from: text))
        return Timestamp(microseconds: Int64(date.timeIntervalSince1970 * 1_000_000))
    }

    @Test("valid expressions and their next ticks, in UTC and in a time zone with daylight saving")
    func nextTicks() throws {
        let utc = try #require(TimeZone(identifier: "UTC"))
        let paris = try #require(TimeZone(identifier: "Europe/Paris"))
        func next(_ cron: String, _ after: String, _ zone: TimeZone) throws -> Timestamp? {
            try CronExpression(parsing: cron).next(after: time(after), in: zone)
        }
        #expect(try next("*/15 * * * *", "2026-11-28T10:07:30Z", utc) == time("2026-11-28T10:15:00Z"))
        #expect(try next("0 3 * * *", "2026-11-28T10:07:00Z", paris) == time("2026-11-29T02:00:00Z"))  // 03:00 CET
        #expect(try next("0 3 * * *", "2026-07-01T10:07:00Z", paris) == time("2026-07-02T01:00:00Z"))  // 03:00 CEST
        #expect(try next("@hourly", "2026-11-28T10:00:00Z", utc) == time("2026-11-28T11:00:00Z"))
        #expect(try next("@weekly", "2026-11-28T10:00:00Z", utc) == time("2026-11-29T00:00:00Z"))  // Sunday
        #expect(try next("30 9 * jan,jul mon-fri", "2026-11-28T10:00:00Z", utc) == time("2027-01-01T09:30:00Z"))  // a Friday
        #expect(try next("0 0 29 2 *", "2026-03-01T00:00:00Z", utc) == time("2028-02-29T00:00:00Z"))
        #expect(try next("0 0 13 * 5", "2026-11-28T10:00:00Z", utc) == time("2026-12-04T00:00:00Z"))  // the 13th or a Friday
        #expect(try next("5-10/5 0 * * 7", "2026-11-28T10:00:00Z", utc) == time("2026-11-29T00:05:00Z"))  // 7 is Sunday
        #expect(try next("0 0 30 2 *", "2026-01-01T00:00:00Z", utc) == nil)
    }

    @Test("each invalid expression is an error naming the field", arguments: [
        ("60 * * * *", "field 1 (minute)"), ("* 24 * * *", "field 2 (hour)"), ("* * 0 * *", "field 3 (day of month)"),
        ("* * * 13 *", "field 4 (month)"), ("* * * foo *", "field 4 (month)"), ("* * * * 8", "field 5 (day of week)"),
        ("* * * *", "4 fields"), ("1,,2 * * * *", "an empty list item"), ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step"), ("@often", "unknown shorthand"), ("1/2/3 * * * *", "more than one"),
    ])
    func invalidExpressions(expression: String, expected: String) {
        #expect { try CronExpression(parsing: expression) } throws: { "\($0)".contains(expected) }
    }

    @Test("registration refuses an expression that never fires, an unknown time zone, a duplicate name")
    func registrationErrors() throws {
        try withTemporaryDirectory { directory in
            let store = try JobRepository(path: directory.path)
            defer { store.close() }
            var scheduler = Scheduler(backend: store)
            let job = NewJob(name: "report")
            #expect { try scheduler.schedule("never", cron: "0 0 30 2 *", job: job) } throws: { "\($0)".contains("never fires") }
            #expect { try scheduler.schedule("zone", cron: "@daily", timeZone: "Mars/Olympus", job: job) } throws: { "\($0)".contains("not a time zone") }
            try scheduler.schedule("daily", cron: "@daily", job: job)
            #expect { try scheduler.schedule("daily", every: .seconds(60), job: job) } throws: { "\($0)".contains("twice") }
            #expect { try scheduler.schedule("fast", every: .microseconds(10), job: job) } throws: { "\($0)".contains("at least 1 ms") }
        }
    }

    @Test("interval ticks fall on multiples of the interval; the latest missed tick is found")
    func intervalTicks() throws {
        let job = PeriodicJobProbe.every(.seconds(60))
        #expect(job.next(after: try time("2026-11-28T10:07:30Z")) == (try time("2026-11-28T10:08:00Z")))
        #expect(job.latestTick(after: try time("2026-11-28T09:00:00Z"), notAfter: try time("2026-11-28T10:07:30Z")) == (try time("2026-11-28T10:07:00Z")))
        #expect(job.latestTick(after: try time("2026-11-28T10:07:00Z"), notAfter: try time("2026-11-28T10:07:30Z")) == nil)
        let cron = PeriodicJobProbe.cron("0 * * * *")
        #expect(cron.latestTick(after: try time("2026-11-28T07:30:00Z"), notAfter: try time("2026-11-28T10:07:30Z")) == (try time("2026-11-28T10:00:00Z")))
    }

    @Test("two processes with the same schedule enqueue exactly one job per tick")
    func oneJobPerTickAcrossProcesses() async throws {
        try await withStore { store, directory in
            let child = Process()
            child.executableURL = try helperExecutable("JobStoreTestHelper")
            child.arguments = ["schedule", directory.path, "ticker", "50", "20"]
            let output = Pipe()
            child.standardOutput = output
            let (ended, end) = AsyncStream<Void>.makeStream()
            child.terminationHandler = { _ in end.finish() }
            try child.run()
            var scheduler = Scheduler(backend: store)
            try scheduler.schedule("ticker", every: .milliseconds(50), job: NewJob(name: "tick", queue: "ticks"))
            try await running(scheduler) {
                for await _ in ended {}  // the child ran beside this scheduler until 20 ticks were enqueued, then ended
            }
            #expect(child.terminationStatus == 0)
            var perTick: [Timestamp: Int] = [:]
            try store.forEachJob { job in
                perTick[job.runAt, default: 0] += 1
                return true
            }
            #expect(perTick.count >= 20)
            #expect(perTick.values.allSatisfy { $0 == 1 }, "ticks enqueued twice: \(perTick.filter { $0.value > 1 }.count)")
            let record = try #require(try store.schedules().first)
            #expect(record.name == "ticker" && record.timing == "every 50000µs" && record.lastTick == perTick.keys.max())
            // The registration keeps the job, for "run now".
            #expect(record.job == NewJob(name: "tick", queue: "ticks"), "\(String(describing: record.job))")
        }
    }

    @Test("after downtime, run-once runs the last missed tick once; skip runs none")
    func missedTicks() async throws {
        // Ticks 1,000 days apart (multiples of the interval since 1970): no new tick can come
        // while the test runs. With hourly ticks a slow run across the hour saw a real tick and
        // failed (CI under ThreadSanitizer, 2026-12-07).
        let interval = Duration.seconds(1000 * 86_400), step = interval.components.seconds * 1_000_000  // in µs
        let threeIntervalsAgo = Timestamp.now.adding(interval * -3)
        try await withStore { store, _ in
            for name in ["skipper", "catch-up"] {
                try await store.write { txn in
                    try txn.register(ScheduleRecord(
                        name: name, timing: "every \(step)µs", timeZone: "UTC", queue: "periodic", jobName: name,
                        missedTicks: .skip, lastTick: threeIntervalsAgo))
                }
            }
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store)
            try scheduler.schedule("skipper", every: interval, missedTicks: .skip, job: NewJob(name: "skipper", queue: "periodic"))
            try scheduler.schedule("catch-up", every: interval, missedTicks: .runOnce, job: NewJob(name: "catch-up", queue: "periodic"))
            scheduler.handle(queue: "periodic") { recorder.record($0.job.name, $0.job) }
            try await running(scheduler) { try await recorder.wait(for: 1, "catch-up") }
            #expect(recorder.events("catch-up").count == 1 && recorder.events("skipper").isEmpty)
            let ran = try #require(recorder.events("catch-up").first?.job)
            #expect(ran.runAt.microseconds % step == 0 && ran.runAt > threeIntervalsAgo)  // the last missed tick
            #expect(ran.runAt > Timestamp.now.adding(interval * -1))
            let schedules = Dictionary(uniqueKeysWithValues: try store.schedules().map { ($0.name, $0) })
            #expect(schedules["skipper"]?.lastTick == threeIntervalsAgo && schedules["skipper"]?.missedTicks == .skip)
            #expect(schedules["catch-up"]?.lastTick == ran.runAt && schedules["catch-up"]?.missedTicks == .runOnce)
        }
    }
}

/// Builds ``PeriodicJob`` values for the pure tick tests.
enum PeriodicJobProbe {
    static func every(_ interval: Duration) -> PeriodicJob {
        PeriodicJob(name: "probe", timing: .every(interval), missedTicks: .skip, job: NewJob(name: "probe"))
    }
    static func cron(_ expression: String) -> PeriodicJob {
        // The expressions given here are valid (the tests above check parsing).
        let parsed = (try? CronExpression(parsing: expression)) ?? (try? CronExpression(parsing: "@hourly"))
        return PeriodicJob(name: "probe", timing: .cron(parsed!, TimeZone(identifier: "UTC")!), missedTicks: .skip, job: NewJob(name: "probe"))
    }
}
