import CChecksum
import Foundation
import LMDB
import Testing
import TestSupport

@testable import JobStore

/// CRC32C computed bit by bit, as docs/FORMAT.md defines it: independent of CChecksum's tables
/// and of the SSE 4.2 instruction.
func crc32cByBits(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0x82F6_3B78 : 0) }
    }
    return ~crc
}

/// `body` followed by its seal (its CRC32C, UInt32 LE), as docs/FORMAT.md describes it.
func sealed(_ body: [UInt8]) -> [UInt8] {
    body + withUnsafeBytes(of: crc32cByBits(body).littleEndian) { Array($0) }
}

@Suite("Seals: every job, pipeline and step record and history entry ends with a CRC32C of its bytes")
struct SealTests {
    @Test("CRC32C: the check value, and the instruction, the table and the definition agree on every length, alignment and split")
    func checksum() {
        let check = Array("123456789".utf8)
        #expect(jobstore_crc32c(0, check, check.count) == 0xE306_9283)
        #expect(jobstore_crc32c_portable(0, check, check.count) == 0xE306_9283)
        #expect(crc32cByBits(check) == 0xE306_9283)
        var generator = SystemRandomNumberGenerator()
        let data = (0..<3_100).map { _ in UInt8.random(in: 0...255, using: &generator) }
        data.withUnsafeBytes { raw in
            for start in 0..<9 {
                // Around the three-stream blocks of 3 × 64 and 3 × 256 bytes, and both in one buffer.
                for count in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 191, 192, 193, 200, 591 - start, 767, 768, 769, 1_000, 3_091 - start] {
                    let piece = UnsafeRawBufferPointer(rebasing: raw[start..<(start + count)])
                    let expected = crc32cByBits(piece)
                    #expect(jobstore_crc32c(0, piece.baseAddress, count) == expected)
                    #expect(jobstore_crc32c_portable(0, piece.baseAddress, count) == expected)
                    // In two pieces, the second continuing the first.
                    let split = count / 3
                    let first = jobstore_crc32c(0, piece.baseAddress, split)
                    #expect(jobstore_crc32c(first, piece.baseAddress.map { $0 + split }, count - split) == expected)
                }
            }
        }
    }

    @Test("every single flipped bit of a sealed job, pipeline or step record or history entry is refused with a clear error, never read as another")
    func everyFlippedBitIsRefused() throws {
        let id = JobID(high: 1, low: 2)
        let pipeline = PipelineID(high: 1, low: 2)
        let decoders: [(String, ([UInt8]) throws -> Void)] = [
            ("record-v3-sealed.bin", { bytes in _ = try bytes.withUnsafeBytes { try RecordFormat.decode($0, id: id) } }),
            ("pipeline-v2.bin", { bytes in _ = try bytes.withUnsafeBytes { try PipelineFormat.decode($0, id: pipeline) } }),
            ("step-v2.bin", { bytes in _ = try bytes.withUnsafeBytes { try PipelineFormat.decodeStep($0, pipeline: pipeline, index: 0) } }),
            // A history entry's value (its key, the first 12 bytes of the fixture, is an index: not sealed).
            ("history-v2.bin", { bytes in
                let key = EventFormat.historyKey(HistoryPosition(time: Timestamp(microseconds: 1_700_000_000_200_000), sequence: 7))
                _ = try key.withUnsafeBytes { key in try bytes.withUnsafeBytes { try EventFormat.decodeHistory(key: key, value: $0) } }
            }),
        ]
        for (name, decode) in decoders {
            let record = name.hasPrefix("history") ? Array(try fixture(name).dropFirst(EventFormat.historyKeySize)) : try fixture(name)
            try decode(record)
            var refused = 0, byChecksum = 0
            for bit in 0..<(record.count * 8) {
                var damaged = record
                damaged[bit / 8] ^= 1 << (bit % 8)
                do {
                    try decode(damaged)
                    Issue.record("\(name) with bit \(bit) flipped decoded")
                } catch let error as JobStoreError {
                    #expect(error.code == .corruptRecord || (bit < 8 && error.code == .newerFormat), "\(name), bit \(bit): \(error)")
                    refused += 1
                    if error.message.contains("do not match its checksum") { byChecksum += 1 }
                }
            }
            #expect(refused == record.count * 8)
            // Past the version byte, the seal is what finds each flip.
            #expect(byChecksum == (record.count - 1) * 8, "\(name)")
        }
    }

    @Test("a bit flipped in a stored job's payload or a pipeline's name is a corruptRecord error on read and a verify finding; the rest of the store works")
    func damagedStoredRecords() throws {
        try withStore { store in
            let job = try store.insert(NewJob(name: "charge", queue: "billing", payload: Array("amount=100".utf8)))
            let other = try store.insert(NewJob(name: "other"))
            let pipeline = try store.enqueue(PipelineDefinition(name: "release", steps: [PipelineStep("build", job: NewJob(name: "build"))]))
            try store.environment.write { txn in
                // The payload's "1" becomes "3": a record that decodes field by field, but not the one written.
                var bytes = try #require(try txn.get(store.db.jobs, Keys.id(job.id)))
                let at = try #require(bytes.firstIndex(of: UInt8(ascii: "1")))
                bytes[at] ^= 0x02
                try txn.put(store.db.jobs, Keys.id(job.id), bytes)
                let tables = try store.db.pipelines()
                var record = try #require(try txn.get(tables.records, Keys.id(pipeline.id.bits)))
                record[record.count - 5] ^= 0x20  // the last letter of the name: "releasE"
                try txn.put(tables.records, Keys.id(pipeline.id.bits), record)
            }
            #expect { try store.uncachedJob(job.id) } throws: { error in
                guard let error = error as? JobStoreError else { return false }
                return error.code == .corruptRecord && error.jobID == job.id && error.message.contains("checksum")
            }
            #expect { try store.pipeline(pipeline.id) } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
            #expect(try store.job(other.id)?.name == "other")
            let problems = try store.verify()
            #expect(problems.contains { $0.kind == .badRecord && $0.jobID == job.id && $0.message.contains("checksum") }, "\(problems)")
            #expect(problems.contains { $0.message.contains("pipeline \(pipeline.id)") && $0.message.contains("checksum") }, "\(problems)")

            // delete cannot remove the damaged job (it reads the record); deleteDamaged can.
            #expect { try store.delete(job.id) } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
            let step = try #require(try store.environment.read { txn in
                try txn.get(try store.db.pipelines().steps, Keys.step(pipeline.id, 0))
            }.flatMap { bytes in try bytes.withUnsafeBytes { try PipelineFormat.decodeStep($0, pipeline: pipeline.id, index: 0) } })
            #expect(throws: JobStoreError.self) { try store.deleteDamaged(other.id) }  // it reads
            #expect(throws: JobStoreError.self) { try store.deleteDamaged(JobID(high: 9, low: 9)) }  // no such job
            try store.write { txn in  // damage the step's job too: still refused, a step goes with its pipeline
                var bytes = try #require(try txn.txn.get(store.db.jobs, Keys.id(step.jobID)))
                bytes[bytes.count - 1] ^= 1
                try txn.txn.put(store.db.jobs, Keys.id(step.jobID), bytes)
            }
            #expect { try store.deleteDamaged(step.jobID) } throws: { "\($0)".contains("step 0 of pipeline") }
            let before = try store.counts()
            #expect(try store.deleteDamaged(job.id) == 4)  // its state · created, created, ready and ready-any entries
            #expect(try store.uncachedJob(job.id) == nil)
            #expect(try store.counts()[.pending] == (before[.pending] ?? 0) - 1)
            // What verify still finds is the damaged pipeline (so its counter's recount too) and its
            // damaged step job, nothing else.
            let left = try store.verify().filter {
                !$0.message.contains(step.jobID.description) && !$0.message.contains(pipeline.id.description) && !$0.message.contains("counter/pipeline/")
            }
            #expect(left.isEmpty, "\(left)")
        }
    }

    @Test("a format-3 store (written by the previous release) reads read-only as it is; the first writable open makes it format 4, and each record is sealed at its next change")
    func formatThreeStoreUpgrades() throws {
        let directory = try fixtureStore("store-v3")

        let readOnly = try JobRepository(path: directory.path, options: JobStoreOptions(readOnly: true))
        #expect(try readOnly.formatVersion() == 3)
        #expect(try readOnly.count(.succeeded) == 30 && readOnly.count(.failed) == 1 && readOnly.count(.cancelled) == 2)
        #expect(try readOnly.pipelines().pipelines.map(\.name).sorted() == ["nightly-import", "release"])
        try expectConsistent(readOnly)
        readOnly.close()

        let store = try JobRepository(path: directory.path, options: testOptions)
        #expect(try store.formatVersion() == Schema.formatVersion)
        let failed = try #require(try store.jobs(in: .failed, limit: 1).jobs.first)
        let version = { (id: JobID) throws -> UInt8? in try store.environment.read { txn in try txn.get(store.db.jobs, Keys.id(id))?.first } }
        #expect(try version(failed.id) == 2)
        let before = try store.events(of: failed.id).events
        try store.retry(failed.id)
        #expect(try version(failed.id) == RecordFormat.currentVersion)
        #expect(try store.events(of: failed.id).events.dropLast() == before[...])
        try expectConsistent(store)
        store.close()
    }
}
