import Foundation
import Testing
import TestSupport

@testable import JobStore

@Suite("Format 7: a scheduler's heartbeat record")
struct WorkerFormatTests {
    let id = OwnerToken(high: 0x1234, low: 0x5678)
    let t = Timestamp(microseconds: 1_700_000_000_000_000)

    @Test("the heartbeat record written by hand from docs/FORMAT.md decodes field by field, and encodes back byte for byte")
    func fixture() throws {
        let bytes = try JobStoreTests.fixture("worker-v1.bin")
        let worker = try bytes.withUnsafeBytes { try WorkerFormat.decode($0, id: id) }
        let job = JobID(high: 0x0190_a5c4_1b2e_7000, low: 0x8123_4567_89ab_cdef)
        #expect(worker == WorkerRecord(
            id: id, host: "build-1", pid: 4711, startedAt: t, beatAt: t.adding(.seconds(10)), interval: .seconds(5), concurrency: 8,
            queues: ["mail"], running: [WorkerRecord.RunningJob(id: job, queue: "mail", name: "send", since: t.adding(.seconds(7)))]))
        #expect(WorkerFormat.encode(worker) == bytes)
    }

    @Test("a damaged heartbeat record is a corrupt record naming the scheduler; a newer version says so")
    func damaged() throws {
        let bytes = try JobStoreTests.fixture("worker-v1.bin")
        func error(_ record: [UInt8]) -> JobStoreError? {
            do {
                _ = try record.withUnsafeBytes { try WorkerFormat.decode($0, id: id) }
                return nil
            } catch {
                return error as? JobStoreError
            }
        }
        var flipped = bytes
        flipped[30] ^= 0x01
        #expect(error(flipped)?.code == .corruptRecord && error(flipped)?.message.contains("heartbeat of scheduler") == true)
        #expect(error(Array(bytes.prefix(20)))?.code == .corruptRecord)
        var newer = bytes
        newer[0] = 2  // the version is checked before the seal
        #expect(error(newer)?.code == .newerFormat)
    }
}
