import Foundation
import Testing
import TestSupport

@testable import JobStore

@Suite("Schedule records: version 2 keeps the job 'run now' enqueues; version 1 still reads")
struct ScheduleFormatTests {
    let t = Timestamp(microseconds: 1_700_000_000_000_000)

    func decode(_ bytes: [UInt8]) throws -> ScheduleRecord {
        try bytes.withUnsafeBytes { try ScheduleFormat.decode($0, name: "digest") }
    }

    @Test("the version-1 record written by hand from docs/FORMAT.md decodes field by field, keeping no job; re-encoded it is version 2")
    func version1() throws {
        let bytes = try JobStoreTests.fixture("schedule-v1.bin")
        let record = try decode(bytes)
        #expect(record == ScheduleRecord(
            name: "digest", timing: "every 3600000000µs", timeZone: "UTC", queue: "mail", jobName: "digest", missedTicks: .runOnce,
            lastTick: t, nextTick: t.adding(.seconds(3600)), updatedAt: t.adding(.seconds(1))))
        #expect(record.job == nil)
        #expect(throws: JobStoreError.self) { try record.jobToRunNow() }
        let again = ScheduleFormat.encode(record)
        #expect(try again[0] == 2 && decode(again) == record)
    }

    @Test("the version-2 record written by hand from docs/FORMAT.md decodes field by field with its job, and encodes back byte for byte")
    func version2() throws {
        let bytes = try JobStoreTests.fixture("schedule-v2.bin")
        let record = try decode(bytes)
        let job = NewJob(
            name: "digest", queue: "mail", payload: Array(#"{"to":"all"}"#.utf8), priority: 5, maxAttempts: 3, tenant: "acme",
            timeout: .seconds(60), headers: ["trace": "x"])
        #expect(record == ScheduleRecord(
            name: "digest", timing: "0 7 * * *", timeZone: "Europe/Paris", queue: "mail", jobName: "digest", missedTicks: .skip,
            lastTick: nil, nextTick: t.adding(.seconds(3600)), updatedAt: t.adding(.seconds(1)), job: job))
        #expect(ScheduleFormat.encode(record) == bytes)
        #expect(try record.jobToRunNow() == job)
    }

    @Test("every combination of the job's optional fields round-trips")
    func roundTrips() throws {
        for mask in 0..<16 {
            let job = NewJob(
                name: "n", queue: "q", payload: mask % 3 == 0 ? [] : [0, 1, 255], priority: UInt8(mask), maxAttempts: UInt16(mask + 1),
                tenant: mask & 1 != 0 ? "t" : nil, uniqueKey: mask & 2 != 0 ? "k" : nil, timeout: mask & 4 != 0 ? .milliseconds(1500) : nil,
                headers: mask & 8 != 0 ? ["b": "2", "a": "1", "é": String(repeating: "v", count: 300)] : [:])
            let record = ScheduleRecord(name: "s", timing: "every 60000000µs", timeZone: "UTC", queue: "q", jobName: "n", missedTicks: .skip, job: job)
            let bytes = ScheduleFormat.encode(record)
            #expect(try bytes.withUnsafeBytes { try ScheduleFormat.decode($0, name: "s") } == record, "mask \(mask)")
        }
    }

    @Test("a damaged version-2 record is a corrupt record naming the schedule; a newer version says so")
    func damaged() throws {
        let bytes = try JobStoreTests.fixture("schedule-v2.bin")
        func error(_ record: [UInt8]) -> JobStoreError? {
            do {
                _ = try decode(record)
                return nil
            } catch {
                return error as? JobStoreError
            }
        }
        var flipped = bytes
        flipped[60] ^= 0x01
        #expect(error(flipped)?.code == .corruptRecord && error(flipped)?.message.contains("digest") == true, "\(String(describing: error(flipped)))")
        #expect(error(Array(bytes.prefix(20)))?.code == .corruptRecord)
        #expect(error([])?.code == .corruptRecord)
        var newer = bytes
        newer[0] = 3
        #expect(error(newer)?.code == .newerFormat)
        var reserved = try JobStoreTests.fixture("schedule-v1.bin")
        reserved[2] = 1  // a job flag in a version-1 record
        #expect(error(reserved)?.code == .corruptRecord)
    }
}
