import Foundation
import LMDB
import Testing
import TestSupport

@testable import JobStore

/// Every field of `view`, read through the view's own accessors (not through `job()`), as a Job.
private func fields(_ view: borrowing JobRecordView) -> Job {
    func text(_ field: JobRecordView.TextField) -> String? {
        view.withUTF8(field) { String(decoding: $0, as: UTF8.self) }
    }
    #expect(text(.name) == view.name && text(.queue) == view.queue && text(.tenant) == view.tenant && text(.uniqueKey) == view.uniqueKey)
    #expect(view.withPayload { Array($0) } == view.payload && view.payloadCount == view.payload.count)
    #expect(view.isInQueue(view.queue) && !view.isInQueue(view.queue + "x") && view.hasTenant(view.tenant) && !view.hasTenant("nobody"))
    #expect(view.cursor == PageCursor(createdAt: view.createdAt, id: view.id))
    return Job(
        id: view.id, name: view.name, queue: view.queue, tenant: view.tenant, state: view.state, priority: view.priority,
        createdAt: view.createdAt, updatedAt: view.updatedAt, runAt: view.runAt, attempts: view.attempts, maxAttempts: view.maxAttempts,
        lease: view.lease, errors: view.errors, uniqueKey: view.uniqueKey, pipeline: view.pipeline, payload: view.payload, result: view.result)
}

@Suite("Record views: jobs read in place, field by field, equal to the owned jobs")
struct RecordViewTests {
    @Test("every field of a view equals the owned job's, for records with and without each optional field (tenant, unique key, lease, pipeline, result, errors, non-ASCII text)")
    func fieldsEqualTheJob() throws {
        try withStore { store in
            let owner = OwnerToken(high: 7, low: 8)
            let plain = try store.insert(NewJob(name: "plain", queue: "q"))
            let full = try store.insert(NewJob(
                name: "näme-ü", queue: "billing", payload: Array(0...255), priority: 9, maxAttempts: 3, tenant: "acme", uniqueKey: "charge-1"))
            _ = try store.claim(queue: "billing", lease: .seconds(30), owner: owner)  // full: running, leased
            _ = try store.fail(full.id, owner: owner, error: "timeout — retried", retryAt: .now)
            let claimed = try #require(try store.claim(queue: "billing", lease: .seconds(30), owner: owner).first)
            #expect(claimed.id == full.id)
            try store.complete(full.id, owner: owner, result: Array("done".utf8))
            let running = try store.insert(NewJob(name: "leased", queue: "work"))
            _ = try store.claim(queue: "work", lease: .seconds(30), owner: owner)
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [
                PipelineStep("a", job: NewJob(name: "a")), PipelineStep("b", job: NewJob(name: "b"), dependsOn: ["a"]),
            ]))

            var seen = 0
            for id in [plain.id, full.id, running.id] + (try #require(try store.pipelineDetails(pipeline.id)).steps.map(\.jobID)) {
                let job = try #require(try store.uncachedJob(id))
                let same = try store.withJob(id) { view in
                    #expect(fields(view) == job)
                    return view.job() == job
                }
                #expect(same == true)
                seen += 1
            }
            #expect(seen == 5)
            // The values written, read through the view (the owned decode is built on it too).
            try store.withJob(full.id) { view in
                #expect(view.name == "näme-ü" && view.queue == "billing" && view.tenant == "acme" && view.uniqueKey == "charge-1")
                #expect(view.state == .succeeded && view.priority == 9 && view.attempts == 2 && view.maxAttempts == 3)
                #expect(view.payload == Array(0...255) && view.result == Array("done".utf8) && view.lease == nil && view.pipeline == nil)
                #expect(view.errors.map(\.message) == ["timeout — retried"] && view.errors.first?.attempt == 1)
            }
            try store.withJob(running.id) { view in #expect(view.state == .running && view.lease?.owner == owner && view.tenant == nil) }
            let steps = try #require(try store.pipelineDetails(pipeline.id)).steps
            try store.withJob(steps[1].jobID) { view in
                #expect(view.pipeline == PipelineReference(pipeline: pipeline.id, step: 1) && view.state == .waiting)
            }
            #expect(try store.withJob(JobID(high: 1, low: 1)) { _ in true } == nil)
        }
    }

    @Test("forEachJob lists what jobs(matching:) lists, for every filter, order and cursor, and stops when asked")
    func forEachMatchesThePages() throws {
        try withStore { store in
            for n in 0..<60 {
                _ = try store.insert(NewJob(
                    name: "job-\(n)", queue: n % 3 == 0 ? "a" : "b", tenant: n % 4 == 0 ? "t" : nil,
                    createdAt: Timestamp(microseconds: 1_000_000 + Int64(n) * 10)))
            }
            let owner = OwnerToken(high: 1, low: 1)
            _ = try store.claim(limit: 7, lease: .seconds(30), owner: owner)
            let filters = [
                JobFilter(), JobFilter(state: .pending), JobFilter(state: .running), JobFilter(queue: "a"), JobFilter(state: .pending, tenant: "t"),
                JobFilter(createdFrom: Timestamp(microseconds: 1_000_100), createdUntil: Timestamp(microseconds: 1_000_400)),
                JobFilter(state: .succeeded),
            ]
            for filter in filters {
                for order in [ListOrder.oldestFirst, .newestFirst] {
                    let listed = try store.jobs(matching: filter, order: order, limit: 1000).jobs
                    var viewed: [Job] = []
                    try store.forEachJob(matching: filter, order: order) { view in
                        viewed.append(view.job())
                        return true
                    }
                    #expect(viewed == listed, "\(filter) \(order)")
                    // From a cursor, as the next page would start.
                    if listed.count > 3 {
                        let after = PageCursor(createdAt: listed[2].createdAt, id: listed[2].id)
                        var rest: [JobID] = []
                        try store.forEachJob(matching: filter, order: order, after: after) { view in
                            rest.append(view.id)
                            return true
                        }
                        #expect(rest == listed.dropFirst(3).map(\.id))
                    }
                }
            }
            var calls = 0
            try store.forEachJob { _ in
                calls += 1
                return calls < 5
            }
            #expect(calls == 5)
        }
    }

    @Test("a damaged record in a walk is a corruptRecord error naming the job; a page with `unreadable` skips it and goes on")
    func damagedRecordInAWalk() throws {
        try withStore { store in
            let jobs = try (0..<5).map { try store.insert(NewJob(name: "j\($0)", payload: [UInt8($0)])) }
            try store.environment.write { txn in
                var bytes = try #require(try txn.get(store.db.jobs, Keys.id(jobs[2].id)))
                bytes[45] ^= 0x01
                try txn.put(store.db.jobs, Keys.id(jobs[2].id), bytes)
            }
            #expect { try store.forEachJob(matching: JobFilter(state: .pending)) { _ in true } } throws: { error in
                guard let error = error as? JobStoreError else { return false }
                return error.code == .corruptRecord && error.jobID == jobs[2].id && error.message.contains("checksum")
            }
            var unreadable: [JobID?] = []
            let page = try store.jobs(matching: JobFilter(state: .pending), unreadable: { unreadable.append($0.jobID) })
            #expect(page.jobs.map(\.id) == [jobs[0].id, jobs[1].id, jobs[3].id, jobs[4].id])
            #expect(unreadable == [jobs[2].id])
            #expect { try store.withJob(jobs[2].id) { _ in true } } throws: { ($0 as? JobStoreError)?.code == .corruptRecord }
        }
    }

    @Test("an error thrown by the body ends the walk and reaches the caller as it is")
    func bodyErrors() throws {
        struct Stop: Error {}
        try withStore { store in
            for n in 0..<3 { _ = try store.insert(NewJob(name: "j\(n)")) }
            var calls = 0
            #expect(throws: Stop.self) {
                try store.forEachJob { _ in
                    calls += 1
                    throw Stop()
                }
            }
            #expect(calls == 1)
        }
    }
}
