import Foundation
import LMDB
import Testing
import TestSupport

@testable import JobStore

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
    return Array(try Data(contentsOf: url))
}

/// A fresh copy of a committed store (`Fixtures/<name>/data.mdb`) in a temporary directory.
func fixtureStore(_ name: String) throws -> TemporaryDirectory {
    let directory = TemporaryDirectory()
    let fixture = try #require(Bundle.module.url(forResource: "Fixtures/\(name)/data.mdb", withExtension: nil))
    try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: fixture.path, toPath: directory.sub("data.mdb"))
    return directory
}

@Suite("Record format: fixtures, round trips, in-place header")
struct FormatTests {
    let fullID = JobID(milliseconds: 1_700_000_000_000, counter: 0, random: 42)

    @Test("the committed version-1 fixtures decode to the jobs they describe")
    func versionOneFixtures() throws {
        let full = try fixture("record-v1-full.bin")
        let job = try full.withUnsafeBytes { try RecordFormat.decode($0, id: fullID) }
        #expect(job == Job(
            id: fullID, name: "send-email", queue: "mail", tenant: "acme", state: .running, priority: 7,
            createdAt: Timestamp(microseconds: 1_700_000_000_000_000), updatedAt: Timestamp(microseconds: 1_700_000_000_500_000),
            runAt: Timestamp(microseconds: 1_700_000_000_100_000), attempts: 2, maxAttempts: 5,
            lease: Lease(expiresAt: Timestamp(microseconds: 1_700_000_060_000_000), owner: OwnerToken(high: 0x0102_0304_0506_0708, low: 0x1112_1314_1516_1718)),
            errors: [JobErrorRecord(message: "timeout", attempt: 1, at: Timestamp(microseconds: 1_700_000_030_000_000))],
            uniqueKey: "email:42", pipeline: PipelineReference(pipeline: try PipelineID(parsing: "0190a5c4-1b2e-7000-8123-456789abcdef"), step: 3),
            payload: Array("hello".utf8), result: Array("ok".utf8)))
        // The encoder writes the same bytes as version 4: version byte 4, an empty timeline (its
        // length, 0), and the seal as the last four bytes (no timeout or headers: flag bits 5
        // and 6 clear, nothing more).
        #expect(RecordFormat.encode(job) == sealed([4] + full.dropFirst() + [0, 0]))

        let minimal = try fixture("record-v1-minimal.bin")
        let small = try minimal.withUnsafeBytes { try RecordFormat.decode($0, id: fullID) }
        #expect(small.state == .pending && small.name == "n" && small.queue == "q" && small.payload.isEmpty)
        #expect(small.createdAt == Timestamp(microseconds: -5) && small.maxAttempts == 20 && small.tenant == nil)
        #expect(RecordFormat.encode(small) == sealed([4] + minimal.dropFirst() + [0, 0]))
    }

    @Test("the fixed header is read in place, matching the full decode")
    func header() throws {
        let full = try fixture("record-v1-full.bin")
        let header = try full.withUnsafeBytes { try RecordFormat.header($0, id: fullID) }
        #expect(header.state == .running && header.priority == 7 && header.attempts == 2 && header.maxAttempts == 5)
        #expect(header.createdAt == Timestamp(microseconds: 1_700_000_000_000_000))
        #expect(header.leaseUntil == Timestamp(microseconds: 1_700_000_060_000_000))
    }

    @Test("long error messages are cut at a character boundary; only the last errors are kept")
    func limitsOnEncode() throws {
        let id = JobID(milliseconds: 1, counter: 0, random: 1)
        var job = Job(
            id: id, name: "n", queue: "q", state: .pending, priority: 0, createdAt: .now, updatedAt: .now, runAt: .now,
            maxAttempts: 1, payload: [])
        job.errors = (0..<15).map { JobErrorRecord(message: String(repeating: "é", count: 600), attempt: UInt16($0), at: .now) }
        let decoded = try RecordFormat.encode(job).withUnsafeBytes { try RecordFormat.decode($0, id: id) }
        #expect(decoded.errors.count == JobLimits.maxErrors)
        #expect(decoded.errors.first?.attempt == 5)
        #expect(decoded.errors.allSatisfy { $0.message.utf8.count == 1024 })
    }

    @Test("job ids: time order, text round trip, malformed text")
    func ids() throws {
        let generator = JobIDGenerator()
        let ids = (0..<5000).map { _ in generator.next(milliseconds: 1_700_000_000_000) }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(10) { #expect(try JobID(parsing: id.description) == id) }
        let text = "0190a5c4-1b2e-7000-8123-456789abcdef"
        #expect(try JobID(parsing: text).description == text)
        #expect(try JobID(parsing: text.replacingOccurrences(of: "-", with: "")).description == text)
        for bad in ["", "xyz", "0190a5c4-1b2e-7000-8123-456789abcde", "0190a5c41-b2e-7000-8123-456789abcdef", "g190a5c4-1b2e-7000-8123-456789abcdef"] {
            #expect { try JobID(parsing: bad) } throws: { ($0 as? JobStoreError)?.code == .invalidID }
        }
    }
}

@Suite("Bad input: each a clear error, and the store unchanged")
struct BadInputTests {
    /// Everything observable about a store, to compare before and after a refused operation.
    func snapshot(_ store: JobRepository) throws -> ([Job], [JobState: Int]) {
        var jobs: [Job] = []
        try store.forEachJob { jobs.append($0); return true }
        return (jobs, try store.counts())
    }

    @Test("bad fields, illegal transitions, unknown ids and malformed ids are refused and change nothing")
    func refusedOperations() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(name: "a", queue: "q"))
            try store.transition(job.id, to: .running)
            try store.transition(job.id, to: .succeeded)
            let before = try snapshot(store)
            func code(_ body: () throws -> Void) -> JobStoreError.Code? {
                do { try body() } catch { return (error as? JobStoreError)?.code }
                return nil
            }
            let unknown = JobID(milliseconds: 5, counter: 0, random: 5)
            #expect(code { try store.insert(NewJob(name: "")) } == .invalidField)
            #expect(code { try store.insert(NewJob(name: String(repeating: "n", count: 256))) } == .invalidField)
            #expect(code { try store.insert(NewJob(name: "x", queue: String(repeating: "q", count: 65))) } == .invalidField)
            #expect(code { try store.insert(NewJob(name: "x", queue: "a\u{0}b")) } == .invalidField)
            #expect(code { try store.insert(NewJob(name: "x", payload: [UInt8](repeating: 0, count: JobLimits.maxPayloadBytes + 1))) } == .invalidField)
            #expect(code { try store.insert(NewJob(name: "x", uniqueKey: "")) } == .invalidField)
            let orphan = Job(
                id: JobID(milliseconds: 6, counter: 0, random: 6), name: "x", queue: "q", state: .waiting, priority: 0,
                createdAt: .now, updatedAt: .now, runAt: .now, maxAttempts: 1, payload: [])
            #expect(code { try store.write { _ = try $0.restore(orphan) } } == .invalidField)  // waiting, but no pipeline step
            var noAttempts = orphan
            noAttempts.state = .pending
            noAttempts.maxAttempts = 0
            #expect(code { try store.write { _ = try $0.restore(noAttempts) } } == .invalidField)  // NewJob makes 0 one; a whole job may not
            #expect(code { try store.insert([NewJob(name: "ok"), NewJob(name: "x", id: job.id)]) } == .invalidField)  // whole batch refused
            #expect(code { try store.transition(job.id, to: .pending) } == .illegalTransition)
            #expect(code { try store.update(job.id) { $0.result = [UInt8](repeating: 0, count: JobLimits.maxResultBytes + 1) } } == .invalidField)
            #expect(code { try store.transition(unknown, to: .running) } == .notFound)
            #expect(code { try store.cancel(unknown) } == .notFound)
            #expect(code { _ = try JobID(parsing: "not-an-id") } == .invalidID)
            #expect(code { _ = try PageCursor(parsing: "12_zz") } == .invalidID)
            let after = try snapshot(store)
            #expect(after.0 == before.0)
            #expect(after.1 == before.1)
            try expectConsistent(store)
        }
    }

    @Test("a corrupt record and a record of a newer format are clear errors naming the job (and both versions)")
    func damagedRecords() throws {
        try withStore() { store in
            let corrupt = try store.insert(NewJob(name: "corrupt", payload: [1, 2, 3]))
            let newer = try store.insert(NewJob(name: "newer"))
            try store.environment.write { txn in
                var bytes = try #require(try txn.get(store.db.jobs, Keys.id(corrupt.id)))
                bytes.removeLast(6)
                try txn.put(store.db.jobs, Keys.id(corrupt.id), bytes)
                var future = try #require(try txn.get(store.db.jobs, Keys.id(newer.id)))
                future[0] = 9
                try txn.put(store.db.jobs, Keys.id(newer.id), future)
            }
            #expect { try store.uncachedJob(corrupt.id) } throws: { error in
                guard let error = error as? JobStoreError else { return false }
                return error.code == .corruptRecord && error.jobID == corrupt.id && error.description.contains("jobstore verify")
            }
            #expect { try store.uncachedJob(newer.id) } throws: { error in
                guard let error = error as? JobStoreError else { return false }
                return error.code == .newerFormat && error.description.contains("version 9") && error.description.contains("1…4")
            }
            // A change to a damaged job is refused; the rest of the store works.
            #expect { try store.cancel(corrupt.id) } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
            let fine = try store.insert(NewJob(name: "fine"))
            #expect(try store.job(fine.id)?.name == "fine")
            let problems = try store.verify()
            #expect(Set(problems.filter { $0.kind == .badRecord }.compactMap(\.jobID)) == [corrupt.id, newer.id])
        }
    }

    @Test("the pipeline and step record examples of docs/FORMAT.md decode (version 1, and version 2 as written by hand), and encode back byte for byte")
    func pipelineRecordExamples() throws {
        let time: [UInt8] = [0x00, 0x40, 0x1e, 0x18, 0x24, 0x0a, 0x06, 0x00]
        let record: [UInt8] = [0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00] + time + time + [UInt8](repeating: 0, count: 8)
            + [0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00] + [0x02] + Array("ci".utf8)
        let id = PipelineID(high: 1, low: 2)
        let pipeline = try record.withUnsafeBytes { try PipelineFormat.decode($0, id: id) }
        #expect(pipeline.name == "ci" && pipeline.version == 2 && pipeline.state == .running && pipeline.finishedAt == nil)
        #expect(pipeline.createdAt == Timestamp(microseconds: 1_700_000_000_000_000) && pipeline.stepCount == 3 && pipeline.succeededSteps == 1)
        // Version 2 is version 1 with the version byte 2 and the seal.
        let sealedRecord = try fixture("pipeline-v2.bin")
        #expect(sealedRecord == sealed([2] + record.dropFirst()))
        #expect(try sealedRecord.withUnsafeBytes { try PipelineFormat.decode($0, id: id) } == pipeline)
        #expect(PipelineFormat.encode(pipeline) == sealedRecord)

        let job = try JobID(parsing: "0190a5c4-1b2e-7000-8123-456789abcdef")
        let stepBytes: [UInt8] = [0x01, 0x00, 0x00, 0x00] + Keys.id(job) + [0x02, 0x00, 0x01, 0x00, 0x02, 0x00] + [0x05] + Array("build".utf8)
        let step = try stepBytes.withUnsafeBytes { try PipelineFormat.decodeStep($0, pipeline: id, index: 0) }
        #expect(step == PipelineStepRecord(index: 0, name: "build", jobID: job, dependents: [1, 2], remainingDependencies: 0))
        let sealedStep = try fixture("step-v2.bin")
        #expect(sealedStep == sealed([2] + stepBytes.dropFirst()))
        #expect(try sealedStep.withUnsafeBytes { try PipelineFormat.decodeStep($0, pipeline: id, index: 0) } == step)
        #expect(PipelineFormat.encode(step) == sealedStep)

        // Damage is an error naming the record, never a crash: truncated, a newer version, unknown flags.
        #expect { try Array(record.dropLast()).withUnsafeBytes { try PipelineFormat.decode($0, id: id) } } throws: {
            ($0 as? JobStoreError)?.code == .corruptRecord && "\($0)".contains("pipeline \(id)")
        }
        var newer = record
        newer[0] = 3
        #expect { try newer.withUnsafeBytes { try PipelineFormat.decode($0, id: id) } } throws: { ($0 as? JobStoreError)?.code == .newerFormat }
        var flags = stepBytes
        flags[0] = 0
        #expect { try flags.withUnsafeBytes { try PipelineFormat.decodeStep($0, pipeline: id, index: 0) } } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
        var unknownFlag = record
        unknownFlag[2] = 0x80
        #expect { try unknownFlag.withUnsafeBytes { try PipelineFormat.decode($0, id: id) } } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
    }

    @Test("a format-1 store (written by the previous release) opens read-only as it is, and is upgraded by the first writable open")
    func formatOneStoreUpgrades() throws {
        let directory = try fixtureStore("store-v1")

        let readOnly = try JobRepository(path: directory.path, options: JobStoreOptions(readOnly: true))
        #expect(try readOnly.formatVersion() == 1)
        #expect(try readOnly.count(.succeeded) == 11 && readOnly.count(.pending) == 1)
        #expect(try readOnly.pipelines().pipelines.isEmpty)
        #expect(try readOnly.pipelineCounts().values.reduce(0, +) == 0)
        try expectConsistent(readOnly)
        readOnly.close()

        let store = try JobRepository(path: directory.path, options: testOptions)
        #expect(try store.formatVersion() == Schema.formatVersion)
        #expect(try store.count(.succeeded) == 11)
        let pipeline = try store.enqueue(PipelineDefinition(name: "after-upgrade", steps: [PipelineStep("a", job: NewJob(name: "a"))]))
        #expect(try store.pipeline(pipeline.id)?.state == .running)
        try expectConsistent(store)
        store.close()

        // A program that reads only format 1 refuses the upgraded store with "newer format": the
        // check it runs is the one below, with its own (lower) version.
        let reopened = try JobRepository(path: directory.path, options: JobStoreOptions(readOnly: true))
        #expect(try reopened.formatVersion() == Schema.formatVersion)
        reopened.close()
    }

    @Test("a format-2 store (written by the previous release) reads read-only without history, and the first writable open adds the event databases")
    func formatTwoStoreUpgrades() throws {
        let directory = try fixtureStore("store-v2")

        let readOnly = try JobRepository(path: directory.path, options: JobStoreOptions(readOnly: true))
        #expect(try readOnly.formatVersion() == 2)
        #expect(try readOnly.count(.succeeded) == 30 && readOnly.count(.failed) == 1 && readOnly.count(.cancelled) == 2)
        #expect(try readOnly.pipelines().pipelines.map(\.name).sorted() == ["nightly-import", "release"])
        let failed = try #require(try readOnly.jobs(in: .failed, limit: 1).jobs.first)
        #expect(try readOnly.events(of: failed.id).events.isEmpty)
        #expect(try readOnly.history().entries.isEmpty)
        try expectConsistent(readOnly)
        readOnly.close()

        let store = try JobRepository(path: directory.path, options: testOptions)
        #expect(try store.formatVersion() == Schema.formatVersion)
        #expect(try store.count(.succeeded) == 30)
        // A job from before the upgrade starts its timeline with its next change.
        try store.retry(failed.id)
        #expect(try store.events(of: failed.id).events.map(\.kind) == [.retried])
        // It is a step of the failed pipeline: the steps it cancelled wait for it again, in the same commit.
        let history = try store.history().entries
        #expect(history.first?.jobID == failed.id && history.allSatisfy { $0.event.kind == .retried })
        try expectConsistent(store)
        store.close()
    }

    @Test("a store of a newer format, an LMDB environment of another program and an empty directory are refused")
    func wrongStores() throws {
        let directory = TemporaryDirectory()
        do {
            let store = try JobRepository(path: directory.sub("newer"))
            try store.environment.write { txn in
                try txn.put(store.db.meta, MetaKey.formatVersion, withUnsafeBytes(of: UInt32(Schema.formatVersion + 1).littleEndian) { Array($0) })
            }
            store.close()
        }
        #expect { try JobRepository(path: directory.sub("newer")) } throws: { error in
            (error as? JobStoreError)?.code == .newerFormat && "\(error)".contains("version \(Schema.formatVersion + 1)")
        }

        let other = DatabaseDefinition<StringCodec, StringCodec>(name: "users")
        let env = try Environment(path: directory.sub("other"), databases: [other])
        try env.write { txn in try txn.put(env.database(other), "ada", "lovelace") }
        env.close()
        #expect { try JobRepository(path: directory.sub("other")) } throws: { ($0 as? JobStoreError)?.code == .notAJobStore }
        // Nothing was added to the foreign environment.
        let check = try Environment(path: directory.sub("other"), options: EnvironmentOptions(readOnly: true))
        #expect(try check.databaseNames() == ["users"])
        check.close()

        try FileManager.default.createDirectory(atPath: directory.sub("empty"), withIntermediateDirectories: true)
        #expect { try JobRepository(path: directory.sub("empty"), options: JobStoreOptions(readOnly: true)) } throws: {
            ($0 as? JobStoreError)?.code == .notAJobStore
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.sub("empty")).isEmpty)
    }

    @Test("a damaged counter stops the write that would change it, naming the counter, and changes nothing")
    func damagedCounters() throws {
        // The commit's counter keys are built on the stack; they are the keys the queries read.
        for queue in ["q", "émail", String(repeating: "z", count: JobLimits.maxQueueBytes)] {
            for state in JobState.allCases {
                let bytes = try MetaKey.withQueueCounter(queue, state) { Array($0) }
                #expect(bytes == Array(MetaKey.queueCounter(queue, state).utf8))
                #expect(bytes == Array("counter/queue/\(state)/\(queue)".utf8))
            }
        }
        try withStore { store in
            let job = try store.insert(NewJob(name: "a", queue: "mail"))
            let before = try store.job(job.id)
            func failure(_ body: () throws -> Void) -> JobStoreError? {
                do { try body() } catch { return error as? JobStoreError }
                return nil
            }
            // The queue's pending counter says 0 (deleted): moving the job out would make it -1.
            try store.environment.write { txn in _ = try txn.delete(store.db.meta, MetaKey.queueCounter("mail", .pending)) }
            let negative = failure { try store.transition(job.id, to: .running) }
            #expect(negative?.code == .corruptRecord)
            #expect(negative?.message.contains("counter/queue/pending/mail would become -1") == true)
            // A counter of the wrong size.
            try store.environment.write { txn in try txn.put(store.db.meta, MetaKey.queueCounter("mail", .pending), [1, 2, 3]) }
            let short = failure { try store.transition(job.id, to: .running) }
            #expect(short?.code == .corruptRecord)
            #expect(short?.message.contains("counter/queue/pending/mail holds 3 bytes, not 8") == true)
            #expect(try store.uncachedJob(job.id) == before)  // each refused transition changed nothing
            #expect(try store.count(.pending) == 1)
        }
    }

    @Test("verify reads every paused queue, rate limit and schedule in meta, and reports each damaged one")
    func damagedControls() throws {
        try withStore { store in
            try store.pause(queue: "mail")
            try store.setRateLimit(queue: "api", starts: 10, per: .seconds(1))
            try expectConsistent(store)
            try store.environment.write { txn in
                try txn.put(store.db.meta, MetaKey.pausedQueue("mail"), [1, 2, 3])
                try txn.put(store.db.meta, MetaKey.rateLimit("api"), [1])
                try txn.put(store.db.meta, MetaKey.schedule("nightly"), [9, 9])
            }
            let problems = try store.verify()
            #expect(problems.count == 3 && problems.allSatisfy { $0.kind == .badRecord })
            for key in ["queue/paused/mail", "queue/rate/api", "schedule/nightly"] {
                #expect(problems.contains { $0.message.hasPrefix("meta \(key):") }, "\(problems)")
            }
        }
    }
}
