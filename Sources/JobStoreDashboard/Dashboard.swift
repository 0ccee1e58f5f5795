import Foundation
import Hummingbird
import JobCore
import JobStoreText
import Logging
import NIOCore
import Synchronization

/// How a dashboard serves a store.
public struct DashboardOptions: Sendable {
    /// Whether the pages offer actions (retry, cancel, requeue, prune). Off by default: the
    /// dashboard is then strictly read-only and says so on every page.
    public var allowWrites: Bool
    /// The secret an action must carry (header `X-JobStore-Token`, or the cookie set by
    /// `/login?token=…` together with the page's CSRF field). Required with ``allowWrites``.
    public var token: String?
    /// Where the dashboard is mounted in a program's own router (e.g. `/jobstore`); every link
    /// starts with it. Empty for `jobstore serve`.
    public var pathPrefix: String
    /// Rows per page of a listing when the request does not say; a request may ask for at most
    /// ``maxPageSize``.
    public var pageSize: Int
    /// The most rows a page may show, whatever the request asks.
    public var maxPageSize: Int
    /// The most jobs one page of the job list looks at when its filter checks each job (a
    /// queue, name, payload text or error text): the page then ends, however few matched, and
    /// offers to search on. Keeps a search page fast on any store.
    public var searchBudget: Int
    /// More Prometheus text appended to `/metrics`: a program running the scheduler passes its
    /// swift-metrics backend's output here (e.g. swift-prometheus's registry).
    public var metricsAppendix: (@Sendable () -> String)?

    /// Options; the defaults are a read-only dashboard at the root.
    public init(
        allowWrites: Bool = false, token: String? = nil, pathPrefix: String = "", pageSize: Int = 50, maxPageSize: Int = 200,
        searchBudget: Int = 20_000, metricsAppendix: (@Sendable () -> String)? = nil
    ) {
        self.searchBudget = searchBudget
        self.allowWrites = allowWrites
        self.token = token
        self.pathPrefix = pathPrefix
        self.pageSize = pageSize
        self.maxPageSize = maxPageSize
        self.metricsAppendix = metricsAppendix
    }
}

/// A dashboard that is set up wrongly (actions without a token, a bad prefix).
public struct DashboardError: Error, CustomStringConvertible {
    /// What is wrong and what to do.
    public let description: String
}

/// The web dashboard of a store: an overview with live counts and throughput, jobs and
/// pipelines with keyset paging, each job's fields, errors and timeline, each pipeline's DAG as
/// SVG, `/metrics` for Prometheus, and — only with ``DashboardOptions/allowWrites`` and the
/// token — actions.
///
/// Serve it alone (``serve(store:host:port:options:logger:onRunning:)``, what `jobstore serve`
/// does), or mount it in a program's own Hummingbird router:
///
/// ```swift
/// let dashboard = try Dashboard(store: store, options: DashboardOptions(pathPrefix: "/jobstore"))
/// dashboard.addRoutes(to: router.group("/jobstore"))
/// ```
public final class Dashboard: Sendable {
    /// The store the pages read and the actions change, either backend.
    let store: any AdministrableStore
    let options: DashboardOptions
    let throughput: Throughput
    /// The CSRF value forms carry with the token cookie; new at each start.
    let csrf: String

    /// A dashboard of `store`: an embedded `JobRepository` (opened read-only, unless actions are
    /// allowed) or a `PostgresJobStore`.
    ///
    /// - Throws: ``DashboardError`` for actions allowed without a token, or a prefix that does
    ///   not start with `/`.
    public init(store: any AdministrableStore, options: DashboardOptions = DashboardOptions()) throws {
        if options.allowWrites && (options.token ?? "").count < 16 {
            throw DashboardError(description: "actions (allowWrites) need a token of at least 16 characters")
        }
        if !options.pathPrefix.isEmpty && (!options.pathPrefix.hasPrefix("/") || options.pathPrefix.hasSuffix("/")) {
            throw DashboardError(description: "pathPrefix must start with / and not end with it, not '\(options.pathPrefix)'")
        }
        if options.pageSize < 1 || options.maxPageSize < options.pageSize {
            throw DashboardError(description: "pageSize must be 1…maxPageSize")
        }
        if options.searchBudget < options.maxPageSize {
            throw DashboardError(description: "searchBudget (\(options.searchBudget)) must be at least maxPageSize (\(options.maxPageSize))")
        }
        self.store = store
        self.options = options
        self.throughput = Throughput()
        self.csrf = Dashboard.randomToken()
    }

    /// A random token of 32 hex digits.
    public static func randomToken() -> String {
        String(format: "%016llx%016llx", UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max))
    }

    /// Adds the dashboard's routes to `router` (a program's router, or a group of it at
    /// ``DashboardOptions/pathPrefix``).
    public func addRoutes<Context: RequestContext>(to router: some RouterMethods<Context>) {
        router.get("/") { _, _ in await self.respond { try await self.overviewPage() } }
        router.get("/jobs") { request, _ in await self.respond { try await self.jobsPage(query(request)) } }
        router.get("/jobs/:id") { request, context in
            await self.respond { try await self.jobPage(context.parameters.get("id") ?? "", notice: query(request)["done"]) }
        }
        router.get("/pipelines") { request, _ in await self.respond { try await self.pipelinesPage(query(request)) } }
        router.get("/pipelines/:id") { request, context in
            await self.respond { try await self.pipelinePage(context.parameters.get("id") ?? "", notice: query(request)["done"]) }
        }
        router.get("/schedules") { request, _ in await self.respond { try await self.schedulesPage(query(request)) } }
        router.get("/errors") { request, _ in await self.respond { try await self.errorsPage(query(request)) } }
        router.get("/workers") { _, _ in await self.respond { try await self.workersPage() } }
        router.post("/jobs/bulk") { request, _ in await self.bulk(request) }
        for action in QueueAction.allCases {
            router.post("/queues/\(action.rawValue)") { request, _ in await self.act(request, queue: action) }
        }
        router.get("/events") { request, _ in self.eventStream(job: query(request)["job"].flatMap { try? JobID(parsing: $0) }) }
        router.get("/metrics") { _, _ in
            await self.respond { Response.text(try await self.metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8") }
        }
        router.get("/login") { request, _ in self.login(request) }
        for action in JobAction.allCases {
            router.post("/jobs/:id/\(action.rawValue)") { request, context in
                await self.act(request, job: context.parameters.get("id") ?? "", action: action)
            }
        }
        for action in [JobAction.retry, .cancel] {
            router.post("/pipelines/:id/\(action.rawValue)") { request, context in
                await self.act(request, pipeline: context.parameters.get("id") ?? "", action: action)
            }
        }
        router.get("/prune") { request, _ in await self.respond { try await self.prunePreview(query(request)) } }
        router.post("/prune") { request, _ in await self.prune(request) }
        router.post("/schedules/run-now") { request, _ in await self.runNow(request) }
        // Anything else: a page saying so, with the way back (not an empty 404).
        router.get("**") { request, _ in
            self.page(
                status: .notFound, title: "Not found",
                body: "<p class=error>No page at \(html(request.uri.path)).</p><p><a href=\"\(self.link("/"))\">Overview</a> · <a href=\"\(self.link("/jobs"))\">Jobs</a> · <a href=\"\(self.link("/pipelines"))\">Pipelines</a></p>")
        }
    }

    /// Serves the dashboard of `store` on `host`:`port` until the task is cancelled or the
    /// process gets SIGINT or SIGTERM. `onRunning` gets the bound port (useful with port 0).
    public static func serve(
        store: any AdministrableStore, host: String = "127.0.0.1", port: Int = 8080, options: DashboardOptions = DashboardOptions(),
        logger: Logger = Logger(label: "jobstore.dashboard"), onRunning: (@Sendable (Int) -> Void)? = nil
    ) async throws {
        let dashboard = try Dashboard(store: store, options: options)
        let router = Router()
        dashboard.addRoutes(to: router)
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "jobstore"),
            onServerRunning: { channel in onRunning?(channel.localAddress?.port ?? port) }, logger: logger)
        try await app.runService()
    }

    // MARK: Responses

    /// Runs a page builder, turning a bad request into a 400 page, what the store refuses into a
    /// 404 or 409 page, and a store failure into a 503 page (the store went away, a newer
    /// format, a damaged record): never a crash.
    func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as PageError {
            return page(status: error.status, title: error.title, body: "<p class=error>\(html(error.message))</p>")
        } catch let error as JobStoreError where [.illegalTransition, .notFound, .invalidArgument, .invalidField, .leaseLost].contains(error.code) {
            // The request asked for what the store refuses (a job already cancelled, say): say why.
            let status: HTTPResponse.Status = error.code == .notFound ? .notFound : error.code == .illegalTransition || error.code == .leaseLost ? .conflict : .badRequest
            return page(status: status, title: "Not done", body: "<p class=error>\(html("\(error)"))</p>")
        } catch {
            return page(
                status: .serviceUnavailable, title: "The store cannot be read",
                body: "<p class=error>\(html("\(error)"))</p><p>The dashboard goes on serving; reload when the store is back.</p>")
        }
    }

    /// A link inside the dashboard.
    func link(_ path: String) -> String { options.pathPrefix + path }

    // MARK: Live updates

    /// Server-Sent Events: an `update` event whenever the store changed, carrying the
    /// overview's counts and chart; a comment every 10 s keeps proxies and dead connections in
    /// check. On LMDB a change is a new last transaction id (checked every 250 ms: a read of
    /// the lock file's shared memory, no transaction); elsewhere a new end of the history or new
    /// counts (checked every second: two index reads).
    func eventStream(job: JobID? = nil) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var last = ""
                var quiet = 0
                let interval = self.store.changePollInterval
                while !Task.isCancelled {
                    let mark = (try? await self.store.changeMark()) ?? last
                    if mark != last {
                        last = mark
                        quiet = 0
                        let update = (try? await self.liveUpdate(mark: mark, job: job)) ?? "{}"
                        try await writer.write(ByteBuffer(string: "event: update\ndata: \(update)\n\n"))
                    } else if Duration.seconds(10) <= interval * quiet {
                        quiet = 0
                        try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    }
                    quiet += 1
                    try await Task.sleep(for: interval)
                }
                try await writer.finish(nil)
            })
    }

    /// The JSON of one live update: the change mark (LMDB's transaction id), the counts per
    /// state, and the overview's fragments (queue table rows, chart) as HTML; for a job's page
    /// (`job`), its state, attempts and progress instead.
    func liveUpdate(mark: String, job id: JobID? = nil) async throws -> String {
        var payload = ["transaction": mark]
        if let id {
            if let job = try await store.job(id) {
                payload["job-state"] = stateBadge(job.state)
                payload["job-attempts"] = "\(job.attempts) of \(job.maxAttempts)"
                payload["progress"] = progressHTML(try await store.progress(of: id))
            }
        } else {
            let counts = try await store.counts()
            await throughput.refresh(from: store)
            payload["states"] = stateCountsHTML(counts)
            payload["queues"] = try await queueRowsHTML()
            payload["chart"] = throughput.chartSVG()
            payload["pipelines"] = pipelineCountsHTML(try await store.pipelineCounts())
        }
        let data = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Metrics

    /// `/metrics` in Prometheus's text format: jobs per state and per queue and state (the
    /// store's O(1) counters), each queue's pause and latency (its oldest ready job's wait),
    /// running jobs whose lease expired, pipelines per state, the store's size, readers and last
    /// transaction, and whatever ``DashboardOptions/metricsAppendix`` adds.
    func metrics() async throws -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
        }
        family("jobstore_jobs", "gauge", "Jobs in each state.")
        let counts = try await store.counts()
        for state in JobState.allCases { lines.append("jobstore_jobs{state=\"\(state)\"} \(counts[state] ?? 0)") }
        // Per queue: its jobs per state, whether it is paused, and how long its oldest ready job
        // has waited to start (its latency: what to alert on when handlers fall behind).
        let queues = try await store.queues()
        let now = Timestamp.now
        family("jobstore_queue_jobs", "gauge", "Jobs of each queue in each state.")
        for queue in queues {
            for state in JobState.allCases {
                lines.append("jobstore_queue_jobs{queue=\"\(prometheusEscaped(queue.name))\",state=\"\(state)\"} \(queue.counts[state] ?? 0)")
            }
        }
        family("jobstore_queue_paused", "gauge", "1 while the queue is paused (no job of it starts), else 0.")
        for queue in queues { lines.append("jobstore_queue_paused{queue=\"\(prometheusEscaped(queue.name))\"} \(queue.pausedAt == nil ? 0 : 1)") }
        family(
            "jobstore_queue_oldest_ready_seconds", "gauge",
            "How long the queue's oldest ready job has waited to start, in seconds (0 when none is ready): its latency.")
        for queue in queues {
            let waited = queue.oldestReadyAt.map { Double(max(0, now.microseconds - $0.microseconds)) / 1_000_000 } ?? 0
            lines.append("jobstore_queue_oldest_ready_seconds{queue=\"\(prometheusEscaped(queue.name))\"} \(waited)")
        }
        let workers = try await store.workers()
        let gone = workers.filter { $0.isGone(at: now) }
        family("jobstore_schedulers", "gauge", "Schedulers by their heartbeat: running, or gone (three heartbeats missed: died or stalled).")
        lines.append("jobstore_schedulers{state=\"running\"} \(workers.count - gone.count)")
        lines.append("jobstore_schedulers{state=\"gone\"} \(gone.count)")
        family("jobstore_handlers_busy", "gauge", "Handlers running a job, over the running schedulers, by their last heartbeat.")
        lines.append("jobstore_handlers_busy \(workers.filter { !$0.isGone(at: now) }.reduce(0) { $0 + $1.running.count })")
        family("jobstore_expired_leases", "gauge", "Running jobs whose lease expired: their worker stopped, and a scheduler's rescue will put them back.")
        lines.append("jobstore_expired_leases \(try await store.expiredLeaseCount())")
        family("jobstore_pipelines", "gauge", "Pipelines in each state.")
        let pipelines = try await store.pipelineCounts()
        for state in PipelineState.allCases { lines.append("jobstore_pipelines{state=\"\(state)\"} \(pipelines[state] ?? 0)") }
        family("jobstore_store_used_bytes", "gauge", "Bytes the store takes: LMDB's data file in use; PostgreSQL's tables with their indexes.")
        lines.append("jobstore_store_used_bytes \(try await store.storageBytes())")
        for metric in try await store.storageFacts().compactMap(\.metric) {
            family(metric.name, metric.isCounter ? "counter" : "gauge", metric.help)
            lines.append("\(metric.name) \(metric.value)")
        }
        var text = lines.joined(separator: "\n") + "\n"
        if let appendix = options.metricsAppendix?() { text += appendix.hasSuffix("\n") || appendix.isEmpty ? appendix : appendix + "\n" }
        return text
    }

    // MARK: Actions

    /// The actions a job page offers with ``DashboardOptions/allowWrites``.
    enum JobAction: String, CaseIterable {
        case retry, cancel, requeue

        /// The operator's change it makes.
        var change: OperatorChange {
            switch self {
            case .retry: .retry
            case .cancel: .cancel
            case .requeue: .requeue
            }
        }

        /// What the job page says after it: "retried".
        var done: String {
            switch self {
            case .retry: "retried"
            case .cancel: "cancelled"
            case .requeue: "requeued"
            }
        }
    }

    /// The 403 page of an action (or its preview) on a dashboard started without --allow-writes.
    func readOnlyPage() -> Response {
        page(status: .forbidden, title: "Read-only", body: "<p class=error>This dashboard is read-only: it was started without --allow-writes.</p>")
    }

    /// Why an action is refused, or `nil` when the request may act: the dashboard allows
    /// writes, and the request carries the token in `X-JobStore-Token`, or the token cookie
    /// with the page's CSRF field.
    func refusal(_ request: Request, form: [String: String]) -> Response? {
        guard options.allowWrites, let token = options.token else {
            return readOnlyPage()
        }
        if request.headers.contains(where: { $0.name.canonicalName == "x-jobstore-token" && constantTimeEqual($0.value, token) }) {
            return nil
        }
        if let cookie = cookies(request)["jobstore_token"], constantTimeEqual(cookie, token), let field = form["csrf"],
            constantTimeEqual(field, csrf)
        {
            return nil
        }
        return page(
            status: .forbidden, title: "Not allowed",
            body: "<p class=error>An action needs the token: the X-JobStore-Token header, or open \(html(link("/login")))?token=… once in this browser.</p>")
    }

    /// `/login?token=…`: with the right token, sets the token cookie (HttpOnly, SameSite=Strict)
    /// and goes to the overview.
    func login(_ request: Request) -> Response {
        guard options.allowWrites, let token = options.token else {
            return page(status: .forbidden, title: "Read-only", body: "<p class=error>This dashboard is read-only: there is nothing to log in to.</p>")
        }
        guard let given = query(request)["token"], constantTimeEqual(given, token) else {
            return page(status: .forbidden, title: "Not allowed", body: "<p class=error>That is not the token this dashboard printed at start.</p>")
        }
        return Response(
            status: .seeOther,
            headers: [
                .location: link("/"),
                .setCookie: "jobstore_token=\(token); HttpOnly; SameSite=Strict; Path=\(options.pathPrefix.isEmpty ? "/" : options.pathPrefix)",
            ])
    }

    /// An action (a form or a script): refused without the token; otherwise `change` makes it
    /// (one transaction of the store's, by the dashboard's actor), and the browser goes to the
    /// page it returns.
    func act(_ request: Request, _ change: () async throws -> String) async -> Response {
        let form = await formFields(request)
        if let refused = refusal(request, form: form) { return refused }
        return await respond { Response(status: .seeOther, headers: [.location: link(try await change())]) }
    }

    /// `POST /jobs/ID/retry|cancel|requeue`; back to the job's page saying what was done.
    func act(_ request: Request, job text: String, action: JobAction) async -> Response {
        await act(request) {
            let id = try parseJobID(text)
            guard try await store.job(id) != nil else { throw PageError.notFound("no job \(id) in this store") }
            let outcome = try await store.apply(action.change, to: id, actor: Dashboard.actor, dryRun: false)
            return "/jobs/\(id)?done=\(action.done),%20now%20\(outcome.state)"
        }
    }

    /// `POST /pipelines/ID/retry|cancel`: re-runs the pipeline's failed and cancelled steps, or
    /// cancels its unfinished ones; back to the pipeline's page saying what was done.
    func act(_ request: Request, pipeline text: String, action: JobAction) async -> Response {
        await act(request) {
            let id = try parsePipelineID(text)
            let asJob = JobID(high: id.high, low: id.low)
            guard try await store.pipeline(id) != nil, try await store.job(asJob) == nil else {
                throw PageError.notFound("no pipeline \(id) in this store")
            }
            let outcome = try await store.apply(action.change, to: asJob, actor: Dashboard.actor, dryRun: false)
            return "/pipelines/\(id)?done=\(action.done),%20now%20\(outcome.state)"
        }
    }

    /// The controls of a queue's row on the overview (with --allow-writes).
    enum QueueAction: String, CaseIterable {
        case pause, resume, limit, unlimit
    }

    /// `POST /queues/pause|resume|limit|unlimit` with `queue` (and for a limit `starts` and
    /// `seconds`): the change in one transaction, recorded in the history with the dashboard as
    /// its actor; back to the overview.
    func act(_ request: Request, queue action: QueueAction) async -> Response {
        let form = await formFields(request)
        if let refused = refusal(request, form: form) { return refused }
        return await respond {
            guard let queue = form["queue"], !queue.isEmpty else { throw PageError.badRequest("which queue? the form has no 'queue' field") }
            let change: QueueChange
            switch action {
            case .pause: change = .pause
            case .resume: change = .resume
            case .unlimit: change = .unlimit
            case .limit:
                guard let starts = form["starts"].flatMap({ Int($0) }), starts >= 1, let seconds = form["seconds"].flatMap({ Int($0) }), seconds >= 1 else {
                    throw PageError.badRequest(
                        "a rate limit is a whole number of starts (1 or more) per a whole number of seconds (1 or more), not '\(form["starts"] ?? "")' per '\(form["seconds"] ?? "")'")
                }
                change = .limit(starts: starts, per: .seconds(seconds))
            }
            do {
                try await store.requireQueue(queue)
            } catch let error as JobStoreError where error.code == .notFound {
                throw PageError.notFound("\(error.message): a queue exists while it has jobs, is paused or is rate-limited")
            }
            _ = try await store.apply(change, to: queue, actor: Dashboard.actor, dryRun: false)
            return Response(status: .seeOther, headers: [.location: link("/")])
        }
    }

    /// `POST /schedules/run-now` with `schedule`: enqueues the schedule's job to run now, in
    /// the history by the dashboard; back to the schedules page, which links the job.
    func runNow(_ request: Request) async -> Response {
        let form = await formFields(request)
        if let refused = refusal(request, form: form) { return refused }
        return await respond {
            guard let name = form["schedule"], !name.isEmpty else { throw PageError.badRequest("which schedule? the form has no 'schedule' field") }
            let job: Job
            do {
                job = try await store.runNow(schedule: name, actor: Dashboard.actor, dryRun: false)
            } catch let error as JobStoreError where error.code == .notFound {
                throw PageError.notFound(error.message)
            } catch let error as JobStoreError where error.code == .invalidArgument {
                throw PageError.badRequest(error.description)
            }
            return Response(status: .seeOther, headers: [.location: link("/schedules?enqueued=\(job.id)")])
        }
    }

    /// Who the dashboard's actions are by, in the history (each needs the token).
    static let actor = "dashboard (\(ProcessInfo.processInfo.hostName), pid \(getpid()))"

    /// `POST /prune` with `state` and `days`: deletes the finished jobs and pipelines in that
    /// state that finished more than that many days ago.
    func prune(_ request: Request) async -> Response {
        let form = await formFields(request)
        if let refused = refusal(request, form: form) { return refused }
        return await respond {
            let (state, days) = try pruneRequest(form)
            let cutoff = Timestamp.now.adding(.seconds(-days * 86_400))
            let (jobs, pipelines) = try await store.prune(state, .finishedBefore(cutoff), batchSize: 1000, dryRun: false)
            return page(
                status: .ok, title: "Pruned",
                body: "<p>Deleted \(jobs) \(state) job(s) and \(pipelines) pipeline(s) that finished before \(cutoff).</p><p><a href=\"\(link("/"))\">Overview</a></p>")
        }
    }

    /// The fields of a URL-encoded form body (at most 64 KiB).
    func formFields(_ request: Request) async -> [String: String] {
        parseForm(await formBody(request))
    }

    /// A URL-encoded form body (at most `limit` bytes; empty when longer or unreadable).
    func formBody(_ request: Request, limit: Int = 1 << 16) async -> String {
        guard let buffer = try? await request.body.collect(upTo: limit) else { return "" }
        return String(buffer: buffer)
    }
}

/// A page that cannot be shown because of the request (400) or because the thing is not there (404).
struct PageError: Error {
    var status: HTTPResponse.Status
    var title: String
    var message: String

    static func badRequest(_ message: String) -> PageError { PageError(status: .badRequest, title: "Bad request", message: message) }
    static func notFound(_ message: String) -> PageError { PageError(status: .notFound, title: "Not found", message: message) }
}

extension Response {
    /// A response with `text` as its body.
    static func text(_ text: String, status: HTTPResponse.Status = .ok, contentType: String) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

// MARK: Small parsers

/// A job id from a URL, or a 400.
func parseJobID(_ text: String) throws -> JobID {
    do { return try JobID(parsing: text) } catch { throw PageError.badRequest("\(error)") }  // it names the text
}

/// A pipeline id from a URL, or a 400.
func parsePipelineID(_ text: String) throws -> PipelineID {
    do { return try PipelineID(parsing: text) } catch { throw PageError.badRequest("\(error)") }
}

/// Refuses a query parameter the page does not read (a typo must not show an unfiltered page as
/// if it were filtered), and an `order` other than oldest or newest.
func requireKnown(_ query: [String: String], _ known: [String]) throws {
    if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
        throw PageError.badRequest("unknown parameter '\(unknown)'; this page takes \(known.joined(separator: ", "))")
    }
    if let order = query["order"], !["", "oldest", "newest"].contains(order) {
        throw PageError.badRequest("order is oldest or newest, not '\(order)'")
    }
}

/// A request's query parameters, percent-decoded by Hummingbird (the last value of a repeated one).
func query(_ request: Request) -> [String: String] {
    var fields: [String: String] = [:]
    for (key, value) in request.uri.queryParameters { fields[String(key)] = String(value) }
    return fields
}

/// The fields of `a=1&b=x+y` (percent-decoded; `+` is a space).
func parseForm(_ text: String) -> [String: String] {
    var fields: [String: String] = [:]
    for pair in text.split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
        if let key = parts.first, !key.isEmpty { fields[key] = parts.count > 1 ? parts[1] : "" }
    }
    return fields
}

/// Every value of `key` in a URL-encoded form (a checkbox list), in order.
func formValues(_ text: String, _ key: String) -> [String] {
    text.split(separator: "&").compactMap { pair in
        let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
        return parts.first == key && parts.count > 1 ? parts[1] : nil
    }
}

/// The cookies of a request.
func cookies(_ request: Request) -> [String: String] {
    var result: [String: String] = [:]
    for header in request.headers[values: .cookie] {
        for pair in header.split(separator: ";") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
    }
    return result
}

/// Compares secrets in time independent of where they differ.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
}

/// A label value escaped for Prometheus's text format.
func prometheusEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
}
