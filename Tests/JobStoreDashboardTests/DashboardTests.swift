import Foundation
import Locking
import Glibc
import Hummingbird
import HummingbirdTesting
import JobStore
import Synchronization
import Testing
import TestSupport

@testable import JobStoreDashboard

/// A store with a failed job (two errors), a succeeded one, 250 pending ones and a pipeline
/// whose first step failed.
func makeDashboardStore(_ path: String) throws -> (store: JobRepository, failed: Job, pipeline: Pipeline) {
    let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
    let owner = OwnerToken.random()
    let failed = try store.insert(NewJob(name: "charge <card>", queue: "billing", payload: Array("{\"amount\": 5}".utf8), maxAttempts: 2))
    _ = try store.claim(queue: "billing", lease: .seconds(60), owner: owner)
    try store.fail(failed.id, owner: owner, error: "card declined", retryAt: .now)
    _ = try store.claim(queue: "billing", lease: .seconds(60), owner: owner)
    try store.fail(failed.id, owner: owner, error: "card declined again", retryAt: nil)
    let done = try store.insert(NewJob(name: "welcome", queue: "mail"))
    _ = try store.claim(queue: "mail", lease: .seconds(60), owner: owner)
    try store.complete(done.id, owner: owner)
    try store.insert((0..<250).map { NewJob(name: "bulk-\($0)", queue: "bulk", payload: [0, 1, 2, 255]) })
    let pipeline = try store.enqueue(PipelineDefinition(name: "etl", steps: [
        PipelineStep("extract", job: NewJob(name: "extract", queue: "etl", maxAttempts: 1)),
        PipelineStep("load", job: NewJob(name: "load", queue: "etl"), dependsOn: ["extract"]),
        PipelineStep("report", job: NewJob(name: "report", queue: "etl"), dependsOn: ["load"]),
    ]))
    let extract = try #require(try store.claim(queue: "etl", lease: .seconds(60), owner: owner).first)
    try store.fail(extract.id, owner: owner, error: "source offline", retryAt: nil)
    return (store, try #require(try store.job(failed.id)), try #require(try store.pipeline(pipeline.id)))
}

func application(_ store: JobRepository, _ options: DashboardOptions = DashboardOptions()) throws -> some ApplicationProtocol {
    let dashboard = try Dashboard(store: store, options: options)
    let router = Router()
    dashboard.addRoutes(to: router)
    return Application(router: router)
}

extension TestResponse {
    var text: String { String(buffer: body) }
}

let tokenHeader = HTTPFields.Element.Name("X-JobStore-Token")!

@Suite("The web dashboard: every route through Hummingbird's test client")
struct DashboardTests {
    @Test("pages: overview, jobs (filters, paging bounds), a job, pipelines, a pipeline's DAG, metrics; bad input is 400, unknown 404")
    func pages() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, pipeline) = try makeDashboardStore(directory.path)
        defer { store.close() }
        try await application(store).test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.text.contains("Read-only: this dashboard changes nothing"))
                #expect(response.text.contains("<b>250</b>pending") && response.text.contains("<b>1</b>failed"))
                #expect(response.text.contains("<svg") && response.text.contains("jobs finished per 10 seconds"))
                #expect(response.text.contains("billing") && response.text.contains("EventSource"))
                #expect(!response.text.contains("<form method=post"))
            }
            try await client.execute(uri: "/jobs?state=failed", method: .get) { response in
                #expect(response.status == .ok && response.text.contains(failed.id.description))
                #expect(response.text.contains("charge &lt;card&gt;"))  // escaped
                #expect(!response.text.contains("bulk-"))
            }
            // Paging: the default page, a page capped at the maximum, and the next page by cursor.
            let first = try await client.execute(uri: "/jobs?state=pending", method: .get)
            #expect(first.text.components(separatedBy: "<tr><td><a href=\"/jobs/").count - 1 == 50)
            let capped = try await client.execute(uri: "/jobs?state=pending&limit=100000", method: .get)
            #expect(capped.text.components(separatedBy: "<tr><td><a href=\"/jobs/").count - 1 == 200)
            let next = try #require(first.text.range(of: "after=")).upperBound
            let cursor = String(first.text[next...].prefix { $0 != "\"" && $0 != "&" })
            let second = try await client.execute(uri: "/jobs?state=pending&after=\(cursor)", method: .get)
            #expect(second.status == .ok && second.text.contains("bulk-50") && !second.text.contains(">bulk-49<"))
            try await client.execute(uri: "/jobs?queue=bulk&since=1h&order=newest&limit=3", method: .get) { response in
                #expect(response.text.contains("bulk-249") && !response.text.contains("bulk-246"))
            }

            try await client.execute(uri: "/jobs/\(failed.id)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("card declined again") && response.text.contains("{&quot;amount&quot;: 5}"))
                #expect(response.text.contains("<h2>Timeline</h2>") && response.text.contains("retried") && response.text.contains(">failed<"))
            }
            try await client.execute(uri: "/pipelines?state=failed", method: .get) { response in
                #expect(response.status == .ok && response.text.contains(pipeline.id.description))
            }
            try await client.execute(uri: "/pipelines/\(pipeline.id)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("aria-label=\"pipeline DAG\"") && response.text.contains("marker-end"))
                #expect(response.text.contains("source offline") == false)  // errors are on the job's page
                #expect(response.text.contains(">extract<") && response.text.contains(">cancelled<"))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("jobstore_jobs{state=\"pending\"} 250"))
                #expect(response.text.contains("jobstore_queue_jobs{queue=\"billing\",state=\"failed\"} 1"))
                #expect(response.text.contains("jobstore_pipelines{state=\"failed\"} 1"))
                #expect(response.text.contains("# TYPE jobstore_store_used_bytes gauge"))
                // For alerting: each queue's pause and latency, and expired leases.
                #expect(response.text.contains("jobstore_queue_paused{queue=\"bulk\"} 0"))
                #expect(response.text.contains("jobstore_queue_oldest_ready_seconds{queue=\"mail\"} 0.0"))
                let waited = try #require(response.text.firstMatch(of: /jobstore_queue_oldest_ready_seconds\{queue="bulk"\} ([0-9.]+)/)?.1)
                #expect(Double(waited).map { $0 > 0 } == true, "bulk's 250 ready jobs have waited: \(waited)")
                #expect(response.text.contains("jobstore_expired_leases 0"))
            }

            // Bad input: each a 400 page saying what is wrong; unknown things 404.
            for (uri, message) in [
                ("/jobs?state=exploded", "is not a state"), ("/jobs?after=zzz", "is not a page cursor"),
                ("/jobs?limit=0", "limit must be"), ("/jobs?since=yesterday", "is not a time"),
                ("/jobs/not-an-id", "is not a job id"), ("/pipelines/xyz", "is not a pipeline id"),
                ("/pipelines?state=stuck", "is not a pipeline state"),
                ("/jobs?nmae=bulk-1", "unknown parameter &#39;nmae&#39;; this page takes state, queue"), ("/jobs?order=sideways", "order is oldest or newest"),
                ("/pipelines?sate=failed", "unknown parameter &#39;sate&#39;"),
            ] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .badRequest, "\(uri)")
                #expect(response.text.contains(message), "\(uri): \(response.text.prefix(200))")
            }
            #expect(try await client.execute(uri: "/jobs/0190a5c4-1b2e-7000-8123-456789abcdef", method: .get).status == .notFound)
            let missing = try await client.execute(uri: "/no/such/page", method: .get)
            #expect(missing.status == .notFound && missing.text.contains("No page at /no/such/page"))
            // A 400 says its message once.
            let bad = try await client.execute(uri: "/jobs/not-an-id", method: .get)
            #expect(bad.text.components(separatedBy: "is not a job id").count == 2, "\(bad.text)")

            // Read-only: actions and login are refused.
            let refused = try await client.execute(uri: "/jobs/\(failed.id)/retry", method: .post)
            #expect(refused.status == .forbidden && refused.text.contains("read-only"))
            #expect(try await client.execute(uri: "/prune", method: .post).status == .forbidden)
            #expect(try await client.execute(uri: "/prune?state=succeeded&days=0", method: .get).status == .forbidden)
            #expect(try await client.execute(uri: "/login?token=whatever", method: .get).status == .forbidden)
        }
        #expect(try store.job(failed.id)?.state == .failed)
    }

    @Test("actions need the token: the header, or the login cookie with the page's CSRF field")
    func actions() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, pipeline) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let token = Dashboard.randomToken()
        let options = DashboardOptions(allowWrites: true, token: token)
        try await application(store, options).test(.router) { client in
            let page = try await client.execute(uri: "/jobs/\(failed.id)", method: .get)
            #expect(page.text.contains("Actions are enabled") && page.text.contains("/jobs/\(failed.id)/retry"))
            let csrf = try #require(page.text.range(of: "name=csrf value=\"")).upperBound
            let csrfValue = String(page.text[csrf...].prefix(32))

            // No token, a wrong token, the cookie without the CSRF field: refused, nothing changed.
            #expect(try await client.execute(uri: "/jobs/\(failed.id)/retry", method: .post).status == .forbidden)
            #expect(try await client.execute(uri: "/jobs/\(failed.id)/retry", method: .post, headers: [tokenHeader: "x" + token.dropFirst()]).status == .forbidden)
            #expect(try await client.execute(uri: "/jobs/\(failed.id)/retry", method: .post, headers: [.cookie: "jobstore_token=\(token)"]).status == .forbidden)
            #expect(try store.job(failed.id)?.state == .failed)

            // The header.
            let retried = try await client.execute(uri: "/jobs/\(failed.id)/retry", method: .post, headers: [tokenHeader: token])
            #expect(retried.status == .seeOther && retried.headers[.location]?.hasPrefix("/jobs/\(failed.id)?done=retried") == true)
            #expect(try store.job(failed.id)?.state == .pending)

            // Login sets the cookie; the cookie with the CSRF field acts.
            let login = try await client.execute(uri: "/login?token=\(token)", method: .get)
            #expect(login.status == .seeOther && login.headers[.setCookie]?.contains("HttpOnly; SameSite=Strict") == true)
            #expect(try await client.execute(uri: "/login?token=wrong", method: .get).status == .forbidden)
            let cancelled = try await client.execute(
                uri: "/jobs/\(failed.id)/cancel", method: .post, headers: [.cookie: "jobstore_token=\(token)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "csrf=\(csrfValue)"))
            #expect(cancelled.status == .seeOther)
            #expect(try store.job(failed.id)?.state == .cancelled)
            // An action the job's state does not allow: a clear page, not a crash.
            let again = try await client.execute(uri: "/jobs/\(failed.id)/cancel", method: .post, headers: [tokenHeader: token])
            #expect(again.status == .conflict)
            #expect(again.text.contains("cancelled"))

            // A pipeline: retry re-runs its failed step, cancel ends it; each offered on its page.
            let pipelinePage = try await client.execute(uri: "/pipelines/\(pipeline.id)", method: .get)
            #expect(pipelinePage.text.contains("/pipelines/\(pipeline.id)/retry") && pipelinePage.text.contains("Retry pipeline"))
            #expect(try await client.execute(uri: "/pipelines/\(pipeline.id)/retry", method: .post).status == .forbidden)
            let rerun = try await client.execute(uri: "/pipelines/\(pipeline.id)/retry", method: .post, headers: [tokenHeader: token])
            #expect(rerun.status == .seeOther && rerun.headers[.location] == "/pipelines/\(pipeline.id)?done=retried,%20now%20running", "\(rerun.headers)")
            #expect(try store.pipeline(pipeline.id)?.state == .running)
            let shown = try await client.execute(uri: "/pipelines/\(pipeline.id)?done=retried,%20now%20running", method: .get)
            #expect(shown.text.contains("retried, now running") && shown.text.contains("Cancel pipeline"))
            let ended = try await client.execute(uri: "/pipelines/\(pipeline.id)/cancel", method: .post, headers: [tokenHeader: token])
            #expect(ended.status == .seeOther)
            #expect(try store.pipeline(pipeline.id)?.state == .cancelled)

            // Prune: a preview first (counts only, nothing deleted), whose button posts the prune.
            let preview = try await client.execute(uri: "/prune?state=succeeded&days=0", method: .get)
            #expect(preview.status == .ok && preview.text.contains("Would delete <b>1 succeeded job(s)</b>") && preview.text.contains("name=days value=\"0\""))
            #expect(try store.count(.succeeded) == 1)
            #expect(try await client.execute(uri: "/prune?state=running&days=1", method: .get).status == .badRequest)
            // Each action button asks first.
            let jobPage = try await client.execute(uri: "/jobs/\(failed.id)", method: .get)
            #expect(jobPage.text.contains("onsubmit=\"return confirm('Retry job charge &lt;card&gt;?')\""), "\(jobPage.text)")

            // Prune: bad fields are 400; good ones delete.
            let badPrune = try await client.execute(
                uri: "/prune", method: .post, headers: [tokenHeader: token], body: ByteBuffer(string: "state=running&days=1"))
            #expect(badPrune.status == .badRequest && badPrune.text.contains("state must be"))
            let pruned = try await client.execute(
                uri: "/prune", method: .post, headers: [tokenHeader: token], body: ByteBuffer(string: "state=succeeded&days=0"))
            #expect(pruned.status == .ok && pruned.text.contains("Deleted 1 succeeded job(s)"))
            #expect(try store.count(.succeeded) == 0)
        }
    }

    @Test("the DAG: an edge that skips layers never passes under another step's box")
    func dagEdgesAvoidBoxes() throws {
        let directory = TemporaryDirectory()
        let store = try JobRepository(path: directory.path, options: JobStoreOptions(durability: .noSync))
        defer { store.close() }
        // The demo's nightly import (thumbnails → report crossed load's box), and a long chain
        // with an edge from its first step to its last, past a box in every column between.
        let definitions = [
            PipelineDefinition(name: "nightly", steps: [
                PipelineStep("fetch", job: NewJob(name: "fetch")), PipelineStep("transform", job: NewJob(name: "transform"), dependsOn: ["fetch"]),
                PipelineStep("thumbnails", job: NewJob(name: "thumbnails"), dependsOn: ["fetch"]),
                PipelineStep("load", job: NewJob(name: "load"), dependsOn: ["transform"]),
                PipelineStep("report", job: NewJob(name: "report"), dependsOn: ["load", "thumbnails"]),
            ]),
            PipelineDefinition(name: "chain", steps: [
                PipelineStep("a", job: NewJob(name: "a")), PipelineStep("b", job: NewJob(name: "b"), dependsOn: ["a"]),
                PipelineStep("c", job: NewJob(name: "c"), dependsOn: ["b"]), PipelineStep("d", job: NewJob(name: "d"), dependsOn: ["c", "a"]),
            ]),
        ]
        for definition in definitions {
            let pipeline = try store.enqueue(definition)
            let details = try #require(try store.pipelineDetails(pipeline.id))
            let layout = DAGLayout(details)
            var edge = 0
            for step in details.steps {
                for dependent in step.dependents {
                    let points = layout.edges[edge]
                    edge += 1
                    for (index, box) in layout.boxes where index != step.index && index != dependent {
                        // Every point along the edge, a pixel apart, lies outside the box.
                        for (a, b) in zip(points, points.dropFirst()) {
                            let length = max(abs(b.x - a.x), abs(b.y - a.y))
                            for t in stride(from: 0.0, through: 1.0, by: 1 / max(length, 1)) {
                                let (x, y) = (a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
                                let inside = x > box.x && x < box.x + DAGLayout.boxWidth && y > box.y && y < box.y + DAGLayout.boxHeight
                                #expect(!inside, "\(definition.name): \(details.steps[step.index].name) → \(details.steps[dependent].name) passes under \(details.steps[index].name)")
                                if inside { break }
                            }
                        }
                    }
                    #expect(points.allSatisfy { $0.y >= 0 && $0.y <= layout.height && $0.x >= 0 && $0.x <= layout.width })
                }
            }
        }
    }

    @Test("a dashboard set up wrongly is refused; a store that went away shows an error page, not a crash")
    func failures() async throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try makeDashboardStore(directory.path)
        #expect(throws: DashboardError.self) { try Dashboard(store: store, options: DashboardOptions(allowWrites: true)) }
        #expect(throws: DashboardError.self) { try Dashboard(store: store, options: DashboardOptions(allowWrites: true, token: "short")) }
        #expect(throws: DashboardError.self) { try Dashboard(store: store, options: DashboardOptions(pathPrefix: "jobs/")) }
        let app = try application(store)
        store.close()
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .serviceUnavailable && response.text.contains("The store cannot be read"))
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .serviceUnavailable)
        }
    }

    @Test("mounted under a prefix in a program's router, every link starts with it")
    func mounted() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let dashboard = try Dashboard(store: store, options: DashboardOptions(pathPrefix: "/ops/jobs"))
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        dashboard.addRoutes(to: router.group("/ops/jobs"))
        try await Application(router: router).test(.router) { client in
            #expect(try await client.execute(uri: "/health", method: .get).text == "ok")
            let overview = try await client.execute(uri: "/ops/jobs/", method: .get)
            #expect(overview.status == .ok && overview.text.contains("href=\"/ops/jobs/jobs?state=failed\""))
            #expect(overview.text.contains("EventSource(\"/ops/jobs/events\")"))
            #expect(try await client.execute(uri: "/ops/jobs/jobs/\(failed.id)", method: .get).status == .ok)
        }
    }

    @Test("live updates: the event stream sends an update at once and another after a commit of another writer")
    func liveUpdates() async throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let port = PortBox()
        let server = Task {
            try await Dashboard.serve(store: store, host: "127.0.0.1", port: 0) { port.set($0) }
        }
        defer { server.cancel() }
        let bound = try await port.wait()
        let stream = try EventStreamReader(port: bound, path: "/events")
        let first = try await stream.nextEvent()
        #expect(first.contains("event: update") && first.contains("\"states\""))
        let transaction = try #require(first.firstMatch(of: /"transaction":"(\d+)"/)?.1)
        try await store.insert(NewJob(name: "while-watching"))
        let second = try await stream.nextEvent()
        let next = try #require(second.firstMatch(of: /"transaction":"(\d+)"/)?.1)
        #expect(Int(next)! > Int(transaction)!)
        #expect(second.contains("<b>251</b>pending"))
    }

    @Test("queue controls: pause, resume, a rate limit and its removal from the overview's rows, each needing the token, each in the history by the dashboard; bad input is 400, an unknown queue 404; the schedules page lists the periodic jobs, and run-now enqueues one's job (token needed, in the history, bad input a clear page)")
    func queueControlsAndSchedules() async throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let token = Dashboard.randomToken()
        try await application(store, DashboardOptions(allowWrites: true, token: token)).test(.router) { client in
            let overview = try await client.execute(uri: "/", method: .get)
            #expect(overview.text.contains("<th>controls</th>") && overview.text.contains("action=\"/queues/pause\"") && overview.text.contains("name=queue value=\"bulk\""))
            func post(_ action: String, _ body: String, authorized: Bool = true) async throws -> TestResponse {
                try await client.execute(
                    uri: "/queues/\(action)", method: .post, headers: authorized ? [tokenHeader: token] : [:], body: ByteBuffer(string: body))
            }
            #expect(try await post("pause", "queue=bulk", authorized: false).status == .forbidden)
            #expect(try store.queues().first { $0.name == "bulk" }?.pausedAt == nil)
            #expect(try await post("pause", "queue=bulk").status == .seeOther)
            #expect(try store.queues().first { $0.name == "bulk" }?.pausedAt != nil)
            #expect(try await client.execute(uri: "/", method: .get).text.contains("action=\"/queues/resume\""))
            #expect(try await post("limit", "queue=bulk&starts=5&seconds=60").status == .seeOther)
            let limit = try #require(try store.queues().first { $0.name == "bulk" }?.rateLimit)
            #expect(limit.starts == 5 && limit.period == .seconds(60))
            #expect(try await client.execute(uri: "/", method: .get).text.contains("5 per 1m"))
            #expect(try await post("unlimit", "queue=bulk").status == .seeOther)
            #expect(try await post("resume", "queue=bulk").status == .seeOther)
            let bulk = try #require(try store.queues().first { $0.name == "bulk" })
            #expect(bulk.pausedAt == nil && bulk.rateLimit == nil)
            // Bad input, unknown queue: each a page saying so, nothing changed.
            let bad = try await post("limit", "queue=bulk&starts=0&seconds=60")
            #expect(bad.status == .badRequest && bad.text.contains("a rate limit is a whole number of starts"))
            #expect(try await post("pause", "starts=1").status == .badRequest)
            let unknown = try await post("pause", "queue=nope")
            #expect(unknown.status == .notFound && unknown.text.contains("no queue &#39;nope&#39;"), "\(unknown.text)")
            // Each change is in the history, by the dashboard.
            let events = try store.history().entries.filter { $0.jobID == JobID(high: 0, low: 0) }
            #expect(events.map(\.event.kind) == [.queuePaused, .queueLimited, .queueUnlimited, .queueResumed], "\(events.map(\.event.kind))")
            #expect(events.allSatisfy { $0.event.actor?.hasPrefix("dashboard (") == true })

            #expect(try await client.execute(uri: "/schedules", method: .get).text.contains("no periodic job is registered"))
            _ = try await store.register(ScheduleRecord(
                name: "nightly", timing: "0 3 * * *", timeZone: "Europe/Berlin", queue: "reports", jobName: "build-report", missedTicks: .skip,
                lastTick: nil, nextTick: Timestamp.now.adding(.seconds(3600)),
                job: NewJob(name: "build-report", queue: "reports", payload: Array("weekly".utf8), priority: 2)))
            _ = try await store.register(ScheduleRecord(name: "legacy", timing: "0 4 * * *", timeZone: "UTC", queue: "reports", jobName: "old", missedTicks: .skip))
            let schedules = try await client.execute(uri: "/schedules", method: .get)
            #expect(schedules.status == .ok && schedules.text.contains("nightly") && schedules.text.contains("<code>0 3 * * *</code>") && schedules.text.contains("Europe/Berlin"))
            #expect(schedules.text.contains("action=\"/schedules/run-now\"") && schedules.text.contains("name=schedule value=\"nightly\""))
            #expect(schedules.text.contains("job not kept") && !schedules.text.contains("name=schedule value=\"legacy\""))
            // Run now: the token needed; the job enqueued as the schedule keeps it, by the dashboard; bad input each a clear page.
            func runNow(_ body: String, authorized: Bool = true) async throws -> TestResponse {
                try await client.execute(
                    uri: "/schedules/run-now", method: .post, headers: authorized ? [tokenHeader: token] : [:], body: ByteBuffer(string: body))
            }
            let before = try store.count(.pending)
            #expect(try await runNow("schedule=nightly", authorized: false).status == .forbidden)
            #expect(try store.count(.pending) == before)
            let ran = try await runNow("schedule=nightly")
            #expect(ran.status == .seeOther)
            let location = try #require(ran.headers[.location])
            let id = try JobID(parsing: String(try #require(location.split(separator: "=").last)))
            let job = try #require(try store.job(id))
            #expect(job.name == "build-report" && job.queue == "reports" && job.payload == Array("weekly".utf8) && job.priority == 2 && job.state == .pending)
            #expect(try store.events(of: id).events.last?.actor?.hasPrefix("dashboard (") == true)
            #expect(try await client.execute(uri: location, method: .get).text.contains("Enqueued job <a href=\"/jobs/\(id)\">"))
            let unknownSchedule = try await runNow("schedule=nope")
            #expect(unknownSchedule.status == .notFound && unknownSchedule.text.contains("no schedule &#39;nope&#39;"), "\(unknownSchedule.text)")
            let legacy = try await runNow("schedule=legacy")
            #expect(legacy.status == .badRequest && legacy.text.contains("registered without its job"), "\(legacy.text)")
            #expect(try await runNow("").status == .badRequest)
            #expect(try store.count(.pending) == before + 1)
        }
        // Read-only: no controls, and a post is refused.
        try await application(store).test(.router) { client in
            let overview = try await client.execute(uri: "/", method: .get)
            #expect(!overview.text.contains("/queues/pause"))
            let refused = try await client.execute(uri: "/queues/pause", method: .post, body: ByteBuffer(string: "queue=bulk"))
            #expect(refused.status == .forbidden)
        }
    }

    @Test("a running job's page shows its progress and follows it live (its own event stream: state, attempts, progress); a finished job's page is not live")
    func liveJobPage() async throws {
        let directory = TemporaryDirectory()
        let (store, failed, _) = try makeDashboardStore(directory.path)
        defer { store.close() }
        let job = try await store.insert(NewJob(name: "copy", queue: "long"))
        let owner = OwnerToken.random()
        _ = try await store.claim(queue: "long", lease: .seconds(60), owner: owner)
        try await store.storeProgress([ProgressReport(id: job.id, progress: JobProgress(fraction: 0.25, message: "copying <files>", attempt: 1, at: .now))])
        let port = PortBox()
        let server = Task {
            try await Dashboard.serve(store: store, host: "127.0.0.1", port: 0) { port.set($0) }
        }
        defer { server.cancel() }
        let bound = try await port.wait()
        try await application(store).test(.router) { client in
            let page = try await client.execute(uri: "/jobs/\(job.id)", method: .get)
            #expect(page.text.contains("<progress value=\"0.25\" max=1></progress> 25 % · attempt 1 · copying &lt;files&gt;"), "\(page.text)")
            #expect(page.text.contains("/events?job=\(job.id)"))
            let finished = try await client.execute(uri: "/jobs/\(failed.id)", method: .get)
            #expect(!finished.text.contains("EventSource") && finished.text.contains("<span id=progress>-</span>"))
        }
        let stream = try EventStreamReader(port: bound, path: "/events?job=\(job.id)")
        let first = try await stream.nextEvent()
        #expect(first.contains("25 %") && first.contains("\"job-attempts\":\"1 of 20\"") && !first.contains("\"states\""))
        try await store.storeProgress([ProgressReport(id: job.id, progress: JobProgress(fraction: 0.75, attempt: 1, at: .now))])
        let second = try await stream.nextEvent()
        #expect(second.contains("75 %"), "\(second)")
    }
}

/// The port a server bound, handed from its `onRunning`.
final class PortBox: Sendable {
    private let value = Lock<Int?>(nil)
    func set(_ port: Int) { value.withLock { $0 = port } }
    func wait() async throws -> Int {
        for _ in 0..<3000 {
            if let port = value.withLock({ $0 }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DashboardError(description: "the server did not start within 30 s")
    }
}

/// A minimal HTTP/1.1 client over a socket that reads a Server-Sent Events stream event by event.
final class EventStreamReader {
    let socket: Int32
    var buffer = ""

    init(port: Int, path: String) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 120, tv_usec: 0)  // generous: the suite may run under a sanitizer
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw DashboardError(description: "cannot connect to port \(port)") }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(socket, $0, strlen($0), 0) }
    }

    deinit { close(socket) }

    /// The next event (the text up to a blank line that contains `event:`), each read within
    /// 120 s. The blocking read runs on a thread of its own: on a thread of the concurrency pool
    /// it would hold one the server's stream needs to send the event (a two-core machine has two).
    func nextEvent() async throws -> String {
        while true {
            if let range = buffer.range(of: "event: update"), let end = buffer[range.lowerBound...].range(of: "\n\n") {
                let event = String(buffer[range.lowerBound..<end.upperBound])
                buffer = String(buffer[end.upperBound...])
                return event
            }
            let socket = self.socket
            let chunk = try await onOwnThread { () throws -> [UInt8] in
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let count = recv(socket, &chunk, chunk.count, 0)
                guard count > 0 else { throw DashboardError(description: "the event stream ended or timed out") }
                return Array(chunk[..<count])
            }
            buffer += String(decoding: chunk, as: UTF8.self)
        }
    }
}
