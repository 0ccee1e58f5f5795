import Foundation
import Hummingbird
import HummingbirdTesting
import JobStore
import Testing
import TestSupport

@testable import JobStoreDashboard

@Suite("The web dashboard: search, common errors and bulk actions")
struct SearchBulkTests {
    @Test("search: name, payload text, error text, a job id to go to; a bounded page says what it looked at and searches on")
    func search() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, pipeline) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let report = try #require(try store.pipelineDetails(pipeline.id)?.jobs.first { $0.name == "report" })
        try await application(store, DashboardOptions(maxPageSize: 200, searchBudget: 200)).test(.router) { client in
            func rows(_ text: String) -> Int { text.components(separatedBy: "<tr><td><a href=\"/jobs/").count - 1 }
            let payload = try await client.execute(uri: "/jobs?payload=%22amount%22", method: .get)
            #expect(payload.status == .ok && rows(payload.text) == 1 && payload.text.contains(failed.id.description))
            #expect(payload.text.contains("Looked at 200 jobs of the range"), "\(payload.text)")
            let error = try await client.execute(uri: "/jobs?state=failed&error=declined", method: .get)
            #expect(rows(error.text) == 1 && error.text.contains(failed.id.description))
            #expect(rows(try await client.execute(uri: "/jobs?error=offline&order=newest", method: .get).text) == 1)
            #expect(rows(try await client.execute(uri: "/jobs?name=bulk-7", method: .get).text) == 1)
            #expect(rows(try await client.execute(uri: "/jobs?state=pending", method: .get).text) == 50)  // no check: no bound said
            #expect(!(try await client.execute(uri: "/jobs?state=pending", method: .get).text.contains("Looked at")))
            // The pipeline's last step was made last: the first 200 jobs looked at hold none.
            let first = try await client.execute(uri: "/jobs?name=report", method: .get)
            #expect(rows(first.text) == 0 && first.text.contains("search on →") && first.text.contains("Looked at 200 jobs"))
            let on = try #require(first.text.firstMatch(of: /href="(\/jobs\?[^"]*after=[^"]+)"/)?.1)
            let second = try await client.execute(uri: String(on).replacingOccurrences(of: "&amp;", with: "&"), method: .get)
            #expect(rows(second.text) == 1 && second.text.contains(report.id.description), "\(on) \(second.text.suffix(1500))")
            // A job id goes to its page; a bad one is 400, an unknown one 404.
            let go = try await client.execute(uri: "/jobs?id=\(failed.id)", method: .get)
            #expect(go.status == .seeOther && go.headers[.location] == "/jobs/\(failed.id)")
            #expect(try await client.execute(uri: "/jobs?id=nope", method: .get).status == .badRequest)
            #expect(try await client.execute(uri: "/jobs?id=\(JobID(high: 0x0123, low: 0x4567))", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/jobs?state=bogus", method: .get).status == .badRequest)
        }
        #expect(throws: DashboardError.self) { _ = try Dashboard(store: store, options: DashboardOptions(searchBudget: 10)) }
    }

    @Test("the errors page: the last errors of recently failed jobs, commonest first, each linked to its jobs")
    func commonErrors() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        try await application(store).test(.router) { client in
            let page = try await client.execute(uri: "/errors", method: .get)
            #expect(page.status == .ok && page.text.contains("2 jobs failed since"), "\(page.text.suffix(1500))")
            #expect(page.text.contains("card declined again") && page.text.contains("source offline"))
            #expect(!page.text.contains("<td>card declined</td>"))  // an earlier attempt's error is not the job's last
            #expect(page.text.contains("/jobs?state=failed&error=card%20declined%20again&order=newest"))
            #expect(page.text.contains("/jobs/\(failed.id)"))
            let later = try await client.execute(uri: "/errors?since=2099-01-01", method: .get)
            #expect(later.text.contains("No job failed since"))
            #expect(try await client.execute(uri: "/errors?since=soon", method: .get).status == .badRequest)
        }
    }

    @Test("bulk actions: a preview shows the count and changes nothing; the confirmed action changes exactly those jobs, in the history by the dashboard; refusals are counted; each needs the token")
    func bulk() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let token = Dashboard.randomToken()
        let succeeded = try #require(try store.jobs(in: .succeeded).jobs.first)
        try await application(store, DashboardOptions(allowWrites: true, token: token)).test(.router) { client in
            let list = try await client.execute(uri: "/jobs?queue=bulk", method: .get)
            #expect(list.text.contains("<form id=bulk") && list.text.contains("name=ids value=\""))
            func post(_ body: String, authorized: Bool = true) async throws -> TestResponse {
                try await client.execute(uri: "/jobs/bulk", method: .post, headers: authorized ? [tokenHeader: token] : [:], body: ByteBuffer(string: body))
            }
            let counts = try store.counts()
            let history = try store.history().entries.count
            // Every pending job of queue bulk: the preview counts 250 and changes nothing.
            let preview = try await post("action=cancel&scope=matching&queue=bulk&state=pending")
            #expect(preview.status == .ok && preview.text.contains("<b>250 would be cancelled</b>"), "\(preview.text)")
            #expect(preview.text.contains("name=confirm value=1") && preview.text.contains("Cancel 250 jobs"))
            #expect(try store.counts() == counts)
            #expect(try store.history().entries.count == history)
            #expect(try await post("action=cancel&scope=matching&queue=bulk&state=pending&confirm=1", authorized: false).status == .forbidden)
            #expect(try store.counts() == counts)
            let done = try await post("action=cancel&scope=matching&queue=bulk&state=pending&confirm=1&expected=250")
            #expect(done.status == .ok && done.text.contains("<b>250 jobs cancelled</b>"), "\(done.text)")
            let after = try store.counts()
            #expect(after[.cancelled] == counts[.cancelled, default: 0] + 250, "\(after)")
            #expect(try store.count(.pending) == counts[.pending, default: 0] - 250)
            let cancels = try store.history().entries.filter { $0.event.kind == .cancelled && $0.event.actor?.hasPrefix("dashboard (") == true }
            #expect(cancels.count == 250)

            // Selected rows: the failed job is retried; the succeeded one is refused, counted and shown.
            let selected = "action=retry&scope=selected&ids=\(failed.id)&ids=\(succeeded.id)"
            let check = try await post(selected)
            #expect(check.text.contains("<b>1 would be retried</b>, 1 refused") && check.text.contains("id=refusals"), "\(check.text)")
            #expect(check.text.contains("name=ids value=\"\(failed.id)\""))
            #expect(try store.job(failed.id)?.state == .failed)
            let retried = try await post(selected + "&confirm=1&expected=2")
            #expect(retried.text.contains("<b>1 job retried</b>") && retried.text.contains("1 refused"))
            #expect(try store.job(failed.id)?.state == .pending)
            #expect(try store.job(succeeded.id)?.state == .succeeded)

            // Bad input: each a 400 saying what, nothing changed.
            let unchanged = try store.counts()
            #expect(try await post("action=explode&scope=matching").text.contains("action must be one of"))
            #expect(try await post("action=delete&scope=selected").text.contains("no job is selected"))
            #expect(try await post("action=delete&scope=everything").status == .badRequest)
            #expect(try await post("action=delete&scope=selected&ids=nope").status == .badRequest)
            #expect(try await post("action=delete&scope=matching&state=bogus").status == .badRequest)
            #expect(try store.counts() == unchanged)
        }
        // Read-only: no boxes, and a post is refused.
        try await application(store).test(.router) { client in
            let list = try await client.execute(uri: "/jobs", method: .get)
            #expect(!list.text.contains("form=bulk"))
            let refused = try await client.execute(uri: "/jobs/bulk", method: .post, body: ByteBuffer(string: "action=delete&scope=matching"))
            #expect(refused.status == .forbidden)
        }
    }
}

@Suite("The web dashboard: the workers page")
struct WorkersPageTests {
    @Test("the workers page lists the schedulers from their heartbeats (a gone one marked) and the jobs their handlers run, each linked; /metrics counts them")
    func workers() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let now = Timestamp.now
        let live = OwnerToken(high: 0xaaaa_0000_0000_0000, low: 1), gone = OwnerToken(high: 0xbbbb_0000_0000_0000, low: 2)
        try await store.recordWorker(WorkerRecord(
            id: gone, host: "old-host", pid: 11, startedAt: now.adding(.seconds(-600)), beatAt: now.adding(.seconds(-300)),
            interval: .seconds(5), concurrency: 2, queues: ["mail"], running: []))
        try await store.recordWorker(WorkerRecord(
            // Beating every hour: it cannot be gone by the time the page is read, however slow the run.
            id: live, host: "web-<1>", pid: 4711, startedAt: now.adding(.seconds(-60)), beatAt: now, interval: .seconds(3600), concurrency: 4,
            queues: ["billing", "mail"], running: [WorkerRecord.RunningJob(id: failed.id, queue: "billing", name: "charge <card>", since: now.adding(.seconds(-42)))]))
        try await application(store).test(.router) { client in
            let page = try await client.execute(uri: "/workers", method: .get)
            #expect(page.status == .ok && page.text.contains("web-&lt;1&gt;") && page.text.contains("4711") && page.text.contains("1 / 4"), "\(page.text)")
            #expect(page.text.contains("<b class=error>gone</b>") && page.text.contains("old-host"))
            #expect(page.text.contains("href=\"/jobs/\(failed.id)\"") && page.text.contains("charge &lt;card&gt;") && page.text.contains("Running jobs (1)"))
            #expect(page.text.contains("href=\"/jobs?queue=billing\""))
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            #expect(metrics.contains("jobstore_schedulers{state=\"running\"} 1") && metrics.contains("jobstore_schedulers{state=\"gone\"} 1"))
            #expect(metrics.contains("jobstore_handlers_busy 1"))
        }
        try await store.removeWorker(live)
        try await store.removeWorker(gone)
        try await application(store).test(.router) { client in
            let page = try await client.execute(uri: "/workers", method: .get)
            #expect(page.text.contains("no scheduler is running"))
        }
    }
}
