import Foundation
import JobStore
import Testing
import TestSupport

/// Search (name, payload text, error text, bounded pages) and the common errors, the same on
/// every backend.
@Suite("Conformance: search and common errors", .serialized)
struct SearchTests {
    /// 300 jobs `{"user":i}`, named "a" (even i) or "b"; each fourth failed for good — "disk
    /// full" when i is a multiple of 12, else "connection refused" — the rest succeeded. The
    /// jobs by i.
    func makeJobs(_ store: any AdministrableStore) async throws -> [Job] {
        let jobs = try await store.enqueue((0..<300).map { i in
            NewJob(name: i % 2 == 0 ? "a" : "b", queue: "search", payload: Array("{\"user\":\(i)}".utf8), maxAttempts: 1)
        })
        let owner = OwnerToken.random()
        let claimed = try await store.finish([], claiming: [ClaimRequest(queue: "search", limit: 300)], lease: .seconds(60), owner: owner).claimed
        #expect(claimed.count == 300)
        let index = Dictionary(uniqueKeysWithValues: jobs.enumerated().map { ($1.id, $0) })
        let outcomes = claimed.map { job in
            let i = index[job.id] ?? 1
            let kind: JobOutcome.Kind = i % 4 != 0 ? .succeeded(result: nil)
                : .failed(error: i % 12 == 0 ? "disk full on /var/\(i % 2)" : "connection refused", retryAt: nil)
            return JobOutcome(id: job.id, owner: owner, kind: kind)
        }
        _ = try await store.finish(outcomes, claiming: [], lease: .seconds(60), owner: owner)
        return jobs
    }

    /// Every job `filter` lists, walking its pages (`limit` a page) until `next` is nil; each
    /// page's `examined` checked against the filter's bound.
    func walk(_ store: any AdministrableStore, _ filter: JobFilter, order: ListOrder = .oldestFirst, limit: Int) async throws -> (ids: [JobID], pages: Int) {
        var ids: [JobID] = []
        var cursor: PageCursor?
        var pages = 0
        repeat {
            let page = try await store.jobs(matching: filter, order: order, limit: limit, after: cursor)
            pages += 1
            #expect(page.jobs.count <= limit)
            if let bound = filter.examineAtMost {
                #expect((page.examined ?? .max) <= bound)
            } else {
                #expect(page.examined == nil)
            }
            ids += page.jobs.map(\.id)
            cursor = page.next
            if pages > 1000 { break }
        } while cursor != nil
        return (ids, pages)
    }

    @Test("a name, a text in the payload, a text in an error: each selects exactly its jobs, in order, across pages", arguments: Backend.available)
    func filters(_ backend: Backend) async throws {
        try await withBackend(backend) { (store: any AdministrableStore, _) in
            let jobs = try await makeJobs(store)
            let byCreation = jobs.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            func expected(_ picked: (Int) -> Bool) -> [JobID] {
                let chosen = Set(jobs.indices.filter(picked).map { jobs[$0].id })
                return byCreation.map(\.id).filter(chosen.contains)
            }
            #expect(try await walk(store, JobFilter(name: "a"), limit: 40).ids == expected { $0 % 2 == 0 })
            #expect(try await walk(store, JobFilter(payloadContains: "\"user\":7}"), limit: 10).ids == expected { $0 == 7 })
            #expect(try await walk(store, JobFilter(payloadContains: "\"user\":1"), limit: 25).ids == expected { "\($0)".hasPrefix("1") })
            #expect(try await walk(store, JobFilter(errorContains: "refused"), limit: 7).ids == expected { $0 % 4 == 0 && $0 % 12 != 0 })
            #expect(try await walk(store, JobFilter(state: .failed, name: "b", errorContains: "disk full"), limit: 50).ids == expected {
                $0 % 12 == 0 && $0 % 2 == 1
            })  // none: multiples of 12 are even
            #expect(try await walk(store, JobFilter(state: .failed, name: "a", errorContains: "/var/0"), limit: 50).ids == expected { $0 % 12 == 0 })
            #expect(try await walk(store, JobFilter(state: .succeeded, errorContains: "disk"), limit: 50).ids.isEmpty)
            #expect(try await walk(store, JobFilter(payloadContains: "{\"user\":299}x"), limit: 5).ids.isEmpty)
            let newest = try await walk(store, JobFilter(name: "b", payloadContains: "\"user\":2"), order: .newestFirst, limit: 3)
            #expect(newest.ids == expected { $0 % 2 == 1 && "\($0)".hasPrefix("2") }.reversed())

            for refused in [JobFilter(payloadContains: ""), JobFilter(errorContains: ""), JobFilter(examineAtMost: 0)] {
                await #expect(throws: JobStoreError.self) { _ = try await store.jobs(matching: refused, order: .oldestFirst, limit: 10, after: nil) }
            }
        }
    }

    @Test("a bounded search page looks at no more jobs than asked, ends there however few matched, and the pages together find every match", arguments: Backend.available)
    func boundedPages(_ backend: Backend) async throws {
        try await withBackend(backend) { (store: any AdministrableStore, _) in
            let jobs = try await makeJobs(store)
            let byCreation = jobs.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }.map(\.id)
            let matches = Set(jobs.indices.filter { "\($0)".hasPrefix("1") }.map { jobs[$0].id })
            let first = try await store.jobs(
                matching: JobFilter(payloadContains: "\"user\":1", examineAtMost: 50), order: .oldestFirst, limit: 1000, after: nil)
            #expect(first.examined == 50)
            #expect(first.jobs.map(\.id) == byCreation.prefix(50).filter(matches.contains))
            #expect(first.next == PageCursor(createdAt: jobs.first { $0.id == byCreation[49] }?.createdAt ?? .now, id: byCreation[49]))
            for order in [ListOrder.oldestFirst, .newestFirst] {
                let walked = try await walk(store, JobFilter(payloadContains: "\"user\":1", examineAtMost: 50), order: order, limit: 20)
                let expected = byCreation.filter(matches.contains)
                #expect(walked.ids == (order == .oldestFirst ? expected : expected.reversed()))
                #expect(walked.pages >= 6)  // 300 jobs, 50 a page at most
            }
            // A full page before the bound: `next` is its last job, as without one.
            let full = try await store.jobs(matching: JobFilter(name: "a", examineAtMost: 100), order: .oldestFirst, limit: 5, after: nil)
            #expect(full.jobs.count == 5 && full.next == full.jobs.last.map { PageCursor(createdAt: $0.createdAt, id: $0.id) })
            #expect(full.examined == 11)  // as far as the sixth "a", which says a next page follows
        }
    }

    @Test("the common errors of recent failures: grouped by last message, commonest first, bounded", arguments: Backend.available)
    func commonErrors(_ backend: Backend) async throws {
        try await withBackend(backend) { (store: any AdministrableStore, _) in
            let before = Timestamp.now.adding(.seconds(-1))
            let jobs = try await makeJobs(store)
            let summary = try await store.commonErrors(since: before, limit: 10, examineAtMost: 10_000)
            #expect(summary.complete && summary.examined == 75)
            #expect(summary.groups.map(\.message) == ["connection refused", "disk full on /var/0"])
            #expect(summary.groups.map(\.count) == [50, 25])
            let newestDisk = try #require(summary.groups.last?.latestJob)
            let diskJobs = Set(jobs.indices.filter { $0 % 12 == 0 }.map { jobs[$0].id })
            #expect(diskJobs.contains(newestDisk))

            let top = try await store.commonErrors(since: before, limit: 1, examineAtMost: 10_000)
            #expect(top.groups.map(\.message) == ["connection refused"] && top.examined == 75)
            let bounded = try await store.commonErrors(since: before, limit: 10, examineAtMost: 10)
            #expect(!bounded.complete && bounded.examined == 10 && bounded.groups.map(\.count).reduce(0, +) == 10)
            let later = try await store.commonErrors(since: Timestamp.now.adding(.seconds(60)), limit: 10, examineAtMost: 10)
            #expect(later.complete && later.examined == 0 && later.groups.isEmpty)
        }
    }
}
