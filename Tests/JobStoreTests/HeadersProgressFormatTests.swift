import Foundation
import LMDB
import Testing
import TestSupport

@testable import JobStore

@Suite("Record format 4 and progress: a job's own timeout, its headers, its handler's progress")
struct HeadersProgressFormatTests {
    let id = JobID(high: 7, low: 9)
    let t = Timestamp(microseconds: 1_700_000_000_000_000)

    @Test("the version-4 record and the progress record written by hand from docs/FORMAT.md decode field by field, and encode back byte for byte")
    func fixtures() throws {
        let record = try fixture("record-v4-headers.bin")
        let job = try record.withUnsafeBytes { try RecordFormat.decode($0, id: id) }
        #expect(job == Job(
            id: id, name: "n", queue: "q", state: .pending, priority: 0, createdAt: t, updatedAt: t,
            runAt: t.adding(.seconds(1)), maxAttempts: 20, timeout: .seconds(30),
            headers: ["request-id": "r-42", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
            payload: Array("{}".utf8)))
        #expect(RecordFormat.encode(job) == record)
        // Read in place, field by field, the same.
        try record.withUnsafeBytes { bytes in
            let view = try JobRecordView(bytes, id: id)
            #expect(view.timeout == .seconds(30) && view.headers == job.headers && view.job() == job)
        }

        let progress = try fixture("progress-v1.bin")
        let decoded = try progress.withUnsafeBytes { try ProgressFormat.decode($0, id: id) }
        #expect(decoded == JobProgress(fraction: 0.375, message: "copying", attempt: 2, at: t.adding(.seconds(5))))
        #expect(ProgressFormat.encode(decoded) == progress)
        #expect(decoded.description.hasPrefix("37.5 % (attempt 2, "))
    }

    @Test("damaged version-4 fields are corrupt records naming what is wrong; a version-3 record may not set the new flags")
    func damagedFields() throws {
        let record = try fixture("record-v4-headers.bin")
        func error(_ bytes: [UInt8]) -> String? {
            do {
                _ = try bytes.withUnsafeBytes { try RecordFormat.decode($0, id: id) }
                return nil
            } catch let error as JobStoreError {
                return error.code == .corruptRecord ? error.description : "not corruptRecord: \(error)"
            } catch {
                return "\(error)"
            }
        }
        var body = Array(record.dropLast(4))
        // The two header names swapped in order: "traceparent" before "request-id".
        let headersAt = 40 + 2 + 2 + 4 + 2 + 8
        #expect(body[headersAt] == 2)
        let first = Array(body[(headersAt + 1)..<(headersAt + 1 + 1 + 10 + 2 + 4)])
        let second = Array(body[(headersAt + 1 + first.count)..<(body.count - 3)])
        body.replaceSubrange((headersAt + 1)..<(body.count - 3), with: second + first)
        #expect(error(sealed(body))?.contains("not in ascending order") == true)
        // The headers flag with a count of 0.
        var empty = Array(record.dropLast(4))
        empty.replaceSubrange(headersAt..<(empty.count - 3), with: [0])
        #expect(error(sealed(empty))?.contains("0 headers") == true)
        // A version-3 record with the timeout flag: unknown to version 3.
        var three = Array(record.dropLast(4))
        three[0] = 3
        #expect(error(sealed(three))?.contains("unknown flag bits") == true)
    }

    @Test("timeouts and headers out of their limits are refused with an error naming the field, and nothing is stored")
    func limits() throws {
        try withStore { store in
            func refusal(_ new: NewJob) -> String? {
                do {
                    try store.insert(new)
                    return nil
                } catch let error as JobStoreError {
                    return error.code == .invalidField ? error.description : "not invalidField: \(error)"
                } catch {
                    return "\(error)"
                }
            }
            #expect(refusal(NewJob(name: "a", timeout: .zero))?.contains("the timeout of job") == true)
            #expect(refusal(NewJob(name: "a", timeout: .seconds(366 * 86_400)))?.contains("1 ms … 365 days") == true)
            #expect(refusal(NewJob(name: "a", headers: ["": "x"]))?.contains("header name ''") == true)
            #expect(refusal(NewJob(name: "a", headers: [String(repeating: "k", count: 65): "x"]))?.contains("1…64 bytes") == true)
            #expect(refusal(NewJob(name: "a", headers: ["k": String(repeating: "v", count: 1025)]))?.contains("header 'k'") == true)
            let many = Dictionary(uniqueKeysWithValues: (0...JobLimits.maxHeaders).map { ("h\($0)", "v") })
            #expect(refusal(NewJob(name: "a", headers: many))?.contains("33 headers") == true)
            #expect(try store.counts().values.reduce(0, +) == 0)
            // At the limits, stored and read back (a timeout below a microsecond's precision is
            // kept in whole microseconds, so the job read back equals the one returned).
            let full = Dictionary(uniqueKeysWithValues: (1...JobLimits.maxHeaders).map {
                (String(repeating: "k", count: 60) + "\($0)", String(repeating: "v", count: JobLimits.maxHeaderValueBytes))
            })
            let job = try store.insert(NewJob(name: "a", timeout: .nanoseconds(1_500_999), headers: full))
            #expect(job.timeout == .microseconds(1500) && job.headers == full)
            #expect(try store.uncachedJob(job.id) == job)
            try expectConsistent(store)
        }
    }

    @Test("progress: stored apart from the record, published on the change feed, dropped for a job that is gone, deleted with its job; verify reports a stray or damaged entry")
    func progressStorage() async throws {
        try await withStore { store in
            let job = try await store.insert(NewJob(name: "long"))
            let gone = JobID(high: 1, low: 1)
            let before = try await store.uncachedJob(job.id)
            let feed = store.changes()
            var iterator = feed.makeAsyncIterator()
            let report = ProgressReport(id: job.id, progress: JobProgress(fraction: 0.5, message: "halfway", attempt: 1, at: t))
            try await store.storeProgress([report, ProgressReport(id: gone, progress: report.progress)])
            #expect(try await store.progress(of: job.id) == report.progress)
            #expect(try await store.progress(of: gone) == nil)
            #expect(try await store.uncachedJob(job.id) == before, "a report rewrote the job's record")
            guard case .progress(let published)? = await iterator.next() else {
                Issue.record("no progress event on the change feed")
                return
            }
            #expect(published == report)
            try expectConsistent(store)

            // A stray entry (its job deleted behind the store's back) and a damaged one.
            let other = try await store.insert(NewJob(name: "other"))
            try await store.storeProgress([ProgressReport(id: other.id, progress: report.progress)])
            let progressDB = try #require(store.db.progress)
            try await store.environment.write { txn in
                try txn.put(progressDB, Keys.id(gone), ProgressFormat.encode(report.progress))
                var bytes = try #require(try txn.get(progressDB, Keys.id(other.id)))
                bytes[5] ^= 0x10
                try txn.put(progressDB, Keys.id(other.id), bytes)
            }
            let problems = try await store.verify()
            #expect(problems.contains { $0.kind == .strayIndexEntry && $0.jobID == gone && $0.message.contains("does not exist") })
            #expect(problems.contains { $0.kind == .badRecord && $0.jobID == other.id && $0.message.contains("checksum") })
            await #expect(throws: JobStoreError.self) { try await store.progress(of: other.id) }
            try await store.environment.write { txn in
                _ = try txn.delete(progressDB, Keys.id(gone))
            }

            // Deleting a job deletes its progress, in the same transaction.
            try await store.delete(job.id)
            try await store.delete(other.id)
            #expect(try await store.environment.read { txn in try txn.count(progressDB) } == 0)
            try expectConsistent(store)
        }
    }

    @Test("a store of format 3 opened for a rehearsal (no upgrade) has no progress and stays as it is; its first writable open adds the progress database")
    func olderStoreWithoutProgress() async throws {
        let directory = try fixtureStore("store-v3")
        let data = try Data(contentsOf: URL(fileURLWithPath: directory.sub("data.mdb")))
        var options = testOptions
        options.upgradesFormat = false
        let rehearsal = try JobRepository(path: directory.path, options: options)
        let some = try #require(try await rehearsal.jobs(in: .succeeded, limit: 1).jobs.first)
        #expect(try await rehearsal.progress(of: some.id) == nil)
        #expect(try await rehearsal.formatVersion() == 3)
        rehearsal.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.sub("data.mdb"))) == data)

        let store = try JobRepository(path: directory.path, options: testOptions)
        #expect(try await store.formatVersion() == Schema.formatVersion && store.db.progress != nil)
        let progress = JobProgress(fraction: 1, attempt: 1, at: t)
        try await store.storeProgress([ProgressReport(id: some.id, progress: progress)])
        #expect(try await store.progress(of: some.id) == progress)
        try expectConsistent(store)
        store.close()
    }
}
