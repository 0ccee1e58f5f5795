import Foundation
import LMDB
import Testing

@testable import JobStore

@Suite("Event history: each job's timeline and the store's history")
struct HistoryTests {
    @Test("the timeline of a job that failed, was retried, rescued and succeeded, and the history in commit order")
    func failRetryRescueSucceed() throws {
        try withStore { store in
            let job = try store.insert(NewJob(name: "charge", queue: "billing", maxAttempts: 5))
            let first = OwnerToken.random(), second = OwnerToken.random(), third = OwnerToken.random()

            let claimed = try #require(try store.claim(queue: "billing", lease: .seconds(60), owner: first).first)
            let retryAt = Timestamp.now.adding(.milliseconds(-1))
            try store.fail(job.id, owner: first, error: "card declined", retryAt: retryAt)
            _ = try store.claim(queue: "billing", lease: .milliseconds(1), owner: second)
            Thread.sleep(forTimeInterval: 0.01)
            #expect(try store.rescueExpiredLeases().map(\.id) == [job.id])
            _ = try store.claim(queue: "billing", lease: .seconds(60), owner: third)
            let extended = Timestamp.now.adding(.seconds(120))
            try store.write { try $0.extendLease(job.id, owner: third, until: extended) }
            let done = try store.complete(job.id, owner: third)

            let timeline = try store.events(of: job.id)
            #expect(timeline.dropped == 0)
            #expect(timeline.events.map(\.kind) == [.inserted, .claimed, .retried, .claimed, .rescued, .claimed, .leaseExtended, .succeeded])
            #expect(timeline.events.map(\.state) == [.pending, .running, .pending, .running, .pending, .running, .running, .succeeded])
            #expect(timeline.events.map(\.attempts) == [0, 1, 1, 2, 2, 3, 3, 3])
            let events = timeline.events
            #expect(events[1].owner == first && events[1].until == claimed.lease?.expiresAt)
            #expect(events[2].message == "card declined" && events[2].until == retryAt)
            #expect(events[3].owner == second)
            #expect(events[4].message?.hasPrefix("lease expired at") == true && events[4].owner == nil)
            #expect(events[6].until == extended)
            #expect(events[7].at == done.updatedAt)
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.at <= $1.at })

            // The history has the same events, in commit order, with growing positions.
            let history = try store.history()
            #expect(history.next == nil)
            #expect(history.entries.map(\.event) == events)
            #expect(history.entries.allSatisfy { $0.jobID == job.id })
            #expect(zip(history.entries, history.entries.dropFirst()).allSatisfy { $0.position < $1.position })
            try expectConsistent(store)
        }
    }

    @Test("history pages: after a position, since a time, and a limit below 1 refused")
    func historyPaging() throws {
        try withStore { store in
            for index in 0..<7 { try store.insert(NewJob(name: "job-\(index)")) }
            let middle = Timestamp.now
            Thread.sleep(forTimeInterval: 0.002)
            let late = try store.insert(NewJob(name: "late"))

            var seen: [HistoryEntry] = []
            var after: HistoryPosition?
            repeat {
                let page = try store.history(after: after, limit: 3)
                seen += page.entries
                after = page.next
                #expect(page.entries.count <= 3)
            } while after != nil
            let all = try store.history().entries
            #expect(seen.count == 8 && seen == all)
            #expect(try store.history(since: middle).entries.map(\.jobID) == [late.id])
            #expect(try store.lastHistoryPosition() == seen.last?.position)
            expectCode(.invalidArgument) { try store.history(limit: 0) }
            #expect(throws: JobStoreError.self) { try HistoryPosition(parsing: "12x.3") }
            #expect(try HistoryPosition(parsing: seen[2].position.description) == seen[2].position)
        }
    }

    @Test("a timeline keeps its newest 32 events and counts the dropped ones")
    func timelineIsBounded() throws {
        try withStore { store in
            let job = try store.insert(NewJob(name: "long"))
            let owner = OwnerToken.random()
            _ = try store.claim(lease: .seconds(60), owner: owner)
            var expiries: [Timestamp] = []
            for index in 0..<40 {
                let expiry = Timestamp(microseconds: 4_000_000_000_000_000 + Int64(index))
                expiries.append(expiry)
                try store.write { try $0.extendLease(job.id, owner: owner, until: expiry) }
            }
            let timeline = try store.events(of: job.id)
            // 42 events: inserted, claimed, 40 extensions; the newest 32 are the last 32 extensions.
            #expect(timeline.dropped == 10)
            #expect(timeline.events.count == JobEvent.timelineLimit)
            #expect(timeline.events.map(\.until) == expiries.suffix(32).map { $0 })
            #expect(try store.history().entries.count == 42)
            try expectConsistent(store)
        }
    }

    @Test("a change appends to the timeline as stored, even when the job was read before another write to its record")
    func timelineAfterInterleavedWrites() throws {
        try withStore { store in
            let a = try store.insert(NewJob(name: "a"))
            let b = try store.insert(NewJob(name: "b"))
            try store.write { txn in
                let stale = try #require(try txn.job(a.id))
                // Re-read and rewritten: the bytes the first read saw are no longer the record.
                try txn.update(a.id) { $0.payload = [1] }
                try txn.update(b.id) { $0.payload = [2] }
                _ = try txn.job(a.id)
                try txn.update(a.id) { $0.payload = [3] }
                // A change of a job read before those writes (as a cascade does; the payload is in
                // no index) appends to what is stored now, not to the timeline the first read saw.
                try txn.update(stale, recording: .requeued) { $0.payload = [4] }
            }
            #expect(try store.events(of: a.id).events.map(\.kind) == [.inserted, .changed, .changed, .requeued])
            #expect(try store.events(of: b.id).events.map(\.kind) == [.inserted, .changed])
            #expect(try store.job(a.id)?.payload == [4])
            try expectConsistent(store)
        }
    }

    @Test("snoozed, released, requeued, cancelled and changed jobs say so; deleted and pruned ones leave their last event in the history only")
    func otherKinds() throws {
        try withStore { store in
            let owner = OwnerToken.random()
            let a = try store.insert(NewJob(name: "a"))
            _ = try store.claim(lease: .seconds(60), owner: owner)
            try store.write { try $0.snooze(a.id, owner: owner, until: .now) }
            _ = try store.claim(lease: .seconds(60), owner: owner)
            try store.write { try $0.release(a.id, owner: owner) }
            _ = try store.claim(lease: .seconds(60), owner: owner)
            try store.requeue(a.id)
            try store.update(a.id) { $0.priority = 9 }
            try store.cancel(a.id)
            #expect(try store.events(of: a.id).events.map(\.kind) == [
                .inserted, .claimed, .snoozed, .claimed, .released, .claimed, .requeued, .changed, .cancelled,
            ])
            try store.retry(a.id)
            #expect(try store.events(of: a.id).events.last?.kind == .retried)  // by hand: a retry, not a requeue
            try store.cancel(a.id)

            let b = try store.insert(NewJob(name: "b"))
            try store.cancel(b.id)
            #expect(try store.delete(a.id))
            #expect(try store.prune(state: .cancelled, createdBefore: .now.adding(.seconds(1))) == 1)
            #expect(try store.events(of: a.id).events.isEmpty && store.events(of: b.id).events.isEmpty)
            let tail = try store.history().entries.suffix(2)
            #expect(tail.map(\.jobID) == [a.id, b.id])
            #expect(tail.map(\.event.kind) == [.deleted, .pruned])
            #expect(tail.map(\.event.state) == [.cancelled, .cancelled])
            try expectConsistent(store)
        }
    }

    @Test("a pipeline's steps record being unblocked, and being cancelled because a dependency failed, with the reason")
    func pipelineEvents() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "etl", steps: [
                PipelineStep("extract", job: NewJob(name: "extract", maxAttempts: 1)),
                PipelineStep("load", job: NewJob(name: "load"), dependsOn: ["extract"]),
                PipelineStep("report", job: NewJob(name: "report"), dependsOn: ["load"]),
            ]))
            let jobs = try #require(try store.pipelineDetails(pipeline.id)).jobs
            let owner = OwnerToken.random()
            _ = try store.claim(lease: .seconds(60), owner: owner)
            try store.complete(jobs[0].id, owner: owner)
            #expect(try store.events(of: jobs[1].id).events.map(\.kind) == [.inserted, .unblocked])
            #expect(try store.events(of: jobs[1].id).events.map(\.state) == [.waiting, .pending])
            _ = try store.claim(lease: .seconds(60), owner: owner)
            try store.fail(jobs[1].id, owner: owner, error: "disk full", retryAt: nil)
            let report = try store.events(of: jobs[2].id).events
            #expect(report.map(\.kind) == [.inserted, .cancelled])
            #expect(report.last?.message?.contains("step 'load'") == true)
            try expectConsistent(store)
        }
    }

    @Test("positions keep growing when the history already holds a later time (the clock went back)")
    func clockGoesBack() throws {
        try withStore { store in
            try store.insert(NewJob(name: "before"))
            let future = HistoryPosition(time: Timestamp.now.adding(.seconds(3600)), sequence: 7)
            let events = try #require(store.db.events)
            let stray = try #require(try store.history().entries.first)
            try store.environment.write { txn in
                try txn.put(events.history, EventFormat.historyKey(future), EventFormat.encodeHistory(stray.jobID, stray.event))
            }
            let after = try store.write { txn in
                [try txn.insert(NewJob(name: "one")), try txn.insert(NewJob(name: "two"))]
            }
            let tail = try store.history(after: future).entries
            #expect(tail.map(\.jobID) == after.map(\.id))
            #expect(tail.map(\.position) == [
                HistoryPosition(time: future.time, sequence: 8), HistoryPosition(time: future.time, sequence: 9),
            ])
        }
    }

    @Test("pruning the history deletes only events recorded before the cutoff, in batches")
    func pruneHistory() async throws {
        try await withStore { store in
            for index in 0..<25 { try await store.insert(NewJob(name: "old-\(index)")) }
            let cutoff = Timestamp.now
            try await Task.sleep(for: .milliseconds(2))
            let kept = try await store.insert(NewJob(name: "new"))
            #expect(try await store.pruneHistory(before: cutoff, batchSize: 10) == 25)
            #expect(try store.history().entries.map(\.jobID) == [kept.id])
            #expect(try await store.pruneHistory(before: cutoff) == 0)
            // The jobs keep their own timelines.
            #expect(try store.count(.pending) == 26)
            #expect(try store.events(of: try #require(try store.jobs(in: .pending, limit: 1).jobs.first).id).events.count == 1)
        }
    }

    @Test("an error message is cut to 256 bytes on a character boundary; every field round-trips")
    func eventCodec() throws {
        let long = String(repeating: "é", count: 200)  // 400 bytes
        let event = JobEvent(
            kind: .claimed, at: Timestamp(microseconds: -5), state: .running, attempts: 65_535, owner: OwnerToken(high: 1, low: 2),
            until: Timestamp(microseconds: .max), message: long)
        #expect(event.message?.utf8.count == 256 && event.message == String(repeating: "é", count: 128))
        let bytes = EventFormat.encode(event)
        #expect(bytes.count == 13 + 16 + 8 + 2 + 256)
        var reader = RecordReader(bytes: UnsafeRawBufferPointer(start: nil, count: 0), subject: .job(JobID(high: 0, low: 0)))
        let decoded = try bytes.withUnsafeBytes { buffer in
            reader = RecordReader(bytes: buffer, subject: .job(JobID(high: 0, low: 0)))
            return try EventFormat.readEvent(&reader)
        }
        #expect(decoded == event)
        let id = JobID(high: 9, low: 9)
        let history = EventFormat.encodeHistory(id, event)
        let key = EventFormat.historyKey(HistoryPosition(time: .now, sequence: 3))
        let entry = try key.withUnsafeBytes { k in try history.withUnsafeBytes { v in try EventFormat.decodeHistory(key: k, value: v) } }
        #expect(entry.jobID == id && entry.event == event && entry.position.sequence == 3)
    }

    @Test("an actor (format 5, flag bit 3) is cut to 100 bytes and round-trips after the message; its bytes are as FORMAT.md gives them")
    func actorCodec() throws {
        let event = JobEvent(kind: .retried, at: Timestamp(microseconds: 7), state: .pending, attempts: 1, message: "m", actor: String(repeating: "a", count: 150))
        #expect(event.actor?.utf8.count == 100)
        let bytes = EventFormat.encode(event)
        #expect(bytes.count == 13 + 2 + 1 + 1 + 100)
        #expect(bytes[12] == 4 | 8)  // message and actor flagged
        #expect(bytes[16] == 100 && bytes[17...].allSatisfy { $0 == UInt8(ascii: "a") })  // length, then the UTF-8, after the message
        let decoded = try bytes.withUnsafeBytes { buffer in
            var reader = RecordReader(bytes: buffer, subject: .job(.none))
            return try EventFormat.readEvent(&reader)
        }
        #expect(decoded == event)
        #expect(bytes.withUnsafeBytes { EventFormat.eventSize($0, at: 0) } == bytes.count)
        #expect(decoded.details == "m; by " + String(repeating: "a", count: 100))
        // An actor longer than 100 bytes on disk is damage, said as such.
        var long = bytes
        long[16] = 101
        long.append(UInt8(ascii: "a"))
        #expect(throws: JobStoreError.self) { try long.withUnsafeBytes { buffer in
            var reader = RecordReader(bytes: buffer, subject: .job(.none))
            return try EventFormat.readEvent(&reader)
        } }
    }

    @Test("the history says who acted (a transaction's actor), a retry by hand is 'retried', and queue controls leave queue events under no job")
    func auditTrail() throws {
        try withStore { store in
            let owner = OwnerToken.random()
            let job = try store.insert(NewJob(name: "charge", queue: "billing", maxAttempts: 1))
            _ = try store.claim(queue: "billing", lease: .seconds(60), owner: owner)
            try store.fail(job.id, owner: owner, error: "card declined", retryAt: nil)
            let after = try store.lastHistoryPosition()
            try store.write { txn in
                txn.actor = "jobstore tool (ada@host, pid 1)"
                try txn.retry(job.id)
                try txn.pause(queue: "billing")
                try txn.pause(queue: "billing")  // already paused: no second event
                try txn.setRateLimit(queue: "billing", starts: 10, per: .seconds(60))
                try txn.resume(queue: "billing")
                try txn.removeRateLimit(queue: "billing")
                try txn.removeRateLimit(queue: "billing")  // none left: no event
                try txn.resume(queue: "mail")  // never paused: no event
            }
            try store.pause(queue: "mail")  // the program itself: no actor
            let entries = try store.history(after: after).entries
            #expect(entries.map(\.event.kind) == [.retried, .queuePaused, .queueLimited, .queueResumed, .queueUnlimited, .queuePaused])
            #expect(entries.dropLast().allSatisfy { $0.event.actor == "jobstore tool (ada@host, pid 1)" })
            #expect(entries.last?.event.actor == nil && entries.last?.event.message == "mail")
            #expect(entries[0].jobID == job.id && entries[0].event.message == nil && entries[0].event.state == .pending)
            #expect(entries.dropFirst().allSatisfy { $0.jobID == .none && $0.event.kind.isQueueEvent })
            #expect(entries[2].event.message == "billing: 10 per 1m")
            #expect(try store.events(of: job.id).events.last?.actor == "jobstore tool (ada@host, pid 1)")
            #expect(try store.verify().isEmpty)
        }
    }

    @Test("a job restored with its past timeline keeps it, then its inserted event; past 32 events the oldest count as dropped")
    func restoreWithTimeline() throws {
        try withStore { store in
            let past: [JobEvent] = (0..<40).map { (n: Int) -> JobEvent in
                let kind: JobEvent.Kind = n % 2 == 0 ? .claimed : .retried
                return JobEvent(kind: kind, at: Timestamp(microseconds: Int64(1_000 + n)), state: .pending, attempts: UInt16(n), message: "try \(n)")
            }
            let job = Job(
                id: JobID(high: 5, low: 5), name: "restored", queue: "q", tenant: nil, state: .pending, priority: 0, createdAt: Timestamp(microseconds: 1_000),
                updatedAt: Timestamp(microseconds: 2_000), runAt: Timestamp(microseconds: 1_000), attempts: 3, maxAttempts: 5, lease: nil, errors: [],
                uniqueKey: nil, pipeline: nil, payload: [1], result: nil)
            try store.write { try $0.restore(job, timeline: JobTimeline(events: past, dropped: 2)) }
            let timeline = try store.events(of: job.id)
            #expect(timeline.events.count == JobEvent.timelineLimit)
            #expect(Array(timeline.events.dropLast()) == Array(past.suffix(JobEvent.timelineLimit - 1)))
            #expect(timeline.events.last?.kind == .inserted)
            #expect(timeline.dropped == 2 + 40 - (JobEvent.timelineLimit - 1))
            #expect(try store.history().entries.map(\.event.kind) == [.inserted])  // the past is the job's, not the history's
            #expect(try store.verify().isEmpty)
        }
    }

    @Test("the version-2 record and history entry written by hand from docs/FORMAT.md decode field by field")
    func fixtures() throws {
        let t = Timestamp(microseconds: 1_700_000_000_000_000)
        let owner = OwnerToken(high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10)
        let expected = [
            JobEvent(kind: .inserted, at: t, state: .pending, attempts: 0),
            JobEvent(kind: .claimed, at: t.adding(.milliseconds(100)), state: .running, attempts: 1, owner: owner, until: t.adding(.milliseconds(30_100))),
            JobEvent(kind: .retried, at: t.adding(.milliseconds(200)), state: .pending, attempts: 1, until: t.adding(.milliseconds(1200)), message: "timeout"),
        ]
        let id = JobID(high: 1, low: 2)
        let record = try fixture("record-v2-timeline.bin")
        // The job's fields are those of the version-1 minimal fixture; the timeline follows them.
        let minimal = try fixture("record-v1-minimal.bin")
        let job = try record.withUnsafeBytes { try RecordFormat.decode($0, id: id) }
        #expect(job == (try minimal.withUnsafeBytes { try RecordFormat.decode($0, id: id) }))
        let block = try #require(try record.withUnsafeBytes { try RecordFormat.timeline($0, id: id).map { Array($0) } })
        let timeline = try block.withUnsafeBytes { try EventFormat.decodeTimeline($0, id: id) }
        #expect(timeline == JobTimeline(events: expected, dropped: 5))
        // Version 3 adds the seal; this program writes version 4: the same bytes but the version
        // byte (and so the seal).
        let sealedRecord = try fixture("record-v3-sealed.bin")
        #expect(RecordFormat.encode(job, timeline: block) == sealed([4] + sealedRecord.dropFirst().dropLast(4)))
        #expect(try sealedRecord.withUnsafeBytes { try RecordFormat.decode($0, id: id) } == job)
        #expect(try sealedRecord.withUnsafeBytes { try RecordFormat.timeline($0, id: id).map { Array($0) } } == block)
        #expect(EventFormat.encode(expected[0]) + EventFormat.encode(expected[1]) + EventFormat.encode(expected[2]) == Array(block.dropFirst(5)))
        #expect(try minimal.withUnsafeBytes { try RecordFormat.timeline($0, id: id) } == nil)

        // Appending to a full timeline drops the oldest without decoding the rest.
        var full = JobTimeline(events: Array(repeating: expected[1], count: 31) + [expected[2]], dropped: 0)
        var bytes = try EventFormat.appending(full.events[0], to: nil, id: id)
        for event in full.events.dropFirst() { bytes = try bytes.withUnsafeBytes { try EventFormat.appending(event, to: $0, id: id) } }
        bytes = try bytes.withUnsafeBytes { try EventFormat.appending(expected[0], to: $0, id: id) }
        full.events = Array(full.events.dropFirst()) + [expected[0]]
        full.dropped = 1
        #expect(try bytes.withUnsafeBytes { try EventFormat.decodeTimeline($0, id: id) } == full)

        let history = try fixture("history-v1.bin")
        let entry = try history.withUnsafeBytes { raw in
            try EventFormat.decodeHistory(key: UnsafeRawBufferPointer(rebasing: raw[..<12]), value: UnsafeRawBufferPointer(rebasing: raw[12...]))
        }
        #expect(entry.position == HistoryPosition(time: t.adding(.milliseconds(200)), sequence: 7))
        #expect(entry.jobID.description == "0190a5c4-1b2e-7000-8123-456789abcdef")
        #expect(entry.event == expected[2])
        // This program writes it as version 2: the same bytes after the version byte, then the seal.
        let sealedHistory = try fixture("history-v2.bin")
        #expect(sealedHistory == Array(history[..<12]) + sealed([2] + history[13...]))
        #expect(EventFormat.historyKey(entry.position) + EventFormat.encodeHistory(entry.jobID, entry.event) == sealedHistory)
        let sealedEntry = try sealedHistory.withUnsafeBytes { raw in
            try EventFormat.decodeHistory(key: UnsafeRawBufferPointer(rebasing: raw[..<12]), value: UnsafeRawBufferPointer(rebasing: raw[12...]))
        }
        #expect(sealedEntry == entry)
    }

    @Test("damaged timelines and history entries: clear errors, and verify reports each")
    func damagedEvents() throws {
        try withStore { store in
            let job = try store.insert(NewJob(name: "victim"))
            let moved = try store.insert(NewJob(name: "moved"))
            let events = try #require(store.db.events)
            let record = try #require(try store.environment.read { try $0.get(store.db.jobs, Keys.id(job.id)) })
            let block = try #require(try record.withUnsafeBytes { try RecordFormat.timeline($0, id: job.id).map { Array($0) } })

            // Each damage of a timeline block, and the error a read gives.
            var unknownKind = block
            unknownKind[5] = 99
            var short = block
            short.removeLast()
            var unknownFlag = block
            unknownFlag[5 + 12] = 0x80
            var tooMany = block
            tooMany[4] = 40
            for (bytes, text) in [(unknownKind, "kind 99"), (short, "needs"), (unknownFlag, "flags"), (tooMany, "40 events")] {
                #expect { try bytes.withUnsafeBytes { try EventFormat.decodeTimeline($0, id: job.id) } } throws: { error in
                    (error as? JobStoreError)?.code == .corruptRecord && "\(error)".contains(text) && "\(error)".contains("\(job.id)")
                }
            }
            // A record whose trailing length points before its header.
            var badLength = record
            badLength[badLength.count - 2] = 0xFF
            badLength[badLength.count - 1] = 0xFF
            expectCode(.corruptRecord) { try badLength.withUnsafeBytes { try RecordFormat.decode($0, id: job.id) } }

            try store.environment.write { txn in
                try txn.put(store.db.jobs, Keys.id(job.id), RecordFormat.encode(job, timeline: short))
                // A record whose timeline ends in another state than the record's.
                var cancelled = moved
                cancelled.state = .cancelled
                try txn.put(store.db.jobs, Keys.id(moved.id), RecordFormat.encode(cancelled, timeline: block))
                try txn.put(events.history, EventFormat.historyKey(HistoryPosition(time: .now.adding(.seconds(60)), sequence: 0)), [1, 2, 3])
            }
            expectCode(.corruptRecord) { try store.events(of: job.id) }
            let problems = try store.verify().filter { $0.kind == .badEvent }
            #expect(problems.count == 3, "\(problems)")
            #expect(problems.contains { $0.jobID == job.id && $0.message.contains("needs") })
            #expect(problems.contains { $0.jobID == moved.id && $0.message.contains("ends with inserted leaving it pending, but the job is cancelled") })
            #expect(problems.contains { $0.message.contains("history entry") })
        }
    }
}
