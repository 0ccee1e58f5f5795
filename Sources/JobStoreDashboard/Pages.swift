import Foundation
import Hummingbird
import JobCore
import JobStoreText

/// Text escaped for HTML (element content and attribute values).
func html(_ text: String) -> String {
    var escaped = ""
    escaped.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        case "'": escaped += "&#39;"
        default: escaped.append(character)
        }
    }
    return escaped
}

/// Text for a single-quoted JavaScript string inside an HTML attribute (then `html` escapes it).
func jsEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
}

/// A query value escaped for a URL.
func urlEscaped(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-_.~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

/// A time as the pages show it: relative to now ("3m ago", "in 59m"), with the exact UTC time
/// in a tooltip and in a `<time>` element that the page's script turns into local time.
func when(_ time: Timestamp, now: Timestamp = .now) -> String {
    "<time datetime=\"\(time)\" title=\"\(time)\">\(Readable.relative(time, now: now))</time>"
}

/// The colour of a state, shared by tables, the chart and the DAG.
func color(_ state: JobState) -> String {
    switch state {
    case .waiting: "#d9d9d9"
    case .pending: "#ffe08a"
    case .running: "#8ec5ff"
    case .succeeded: "#8fd694"
    case .failed: "#ff8a80"
    case .cancelled: "#bdbdbd"
    }
}

extension Dashboard {
    /// A whole page: the navigation, the read-only or actions banner, `body`.
    /// `live`: the page's fragments follow the store (``eventStream(job:)``); `liveJob`: those of
    /// that job's page.
    func page(status: HTTPResponse.Status = .ok, title: String, body: String, live: Bool = false, liveJob: JobID? = nil) -> Response {
        let banner = options.allowWrites
            ? "<div class=banner-writes>Actions are enabled (started with --allow-writes); they need the token.</div>"
            : "<div class=banner>Read-only: this dashboard changes nothing in the store.</div>"
        let script = live ? """
            <script>
            const source = new EventSource("\(link("/events"))\(liveJob.map { "?job=\($0)" } ?? "")");
            source.addEventListener("update", (message) => {
              const update = JSON.parse(message.data);
              for (const id of ["states", "queues", "chart", "pipelines", "job-state", "job-attempts", "progress"]) {
                const element = document.getElementById(id);
                if (element && update[id] !== undefined) element.innerHTML = update[id];
              }
              localTimes();
              const transaction = document.getElementById("transaction");
              if (transaction) transaction.textContent = update.transaction;
            });
            </script>
            """ : ""
        let document = """
            <!doctype html>
            <html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
            <title>\(html(title)) · JobStore</title>
            <style>
            body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
            header { background: #1d2b3a; color: #fff; padding: 10px 20px; display: flex; gap: 18px; align-items: baseline; }
            header a { color: #cfe3ff; text-decoration: none; } header strong { font-size: 16px; margin-right: 12px; }
            main { padding: 16px 20px; max-width: 1200px; }
            .banner { background: #eef3f8; border-bottom: 1px solid #d6e0ea; padding: 6px 20px; font-size: 13px; }
            .banner-writes { background: #fff4e5; border-bottom: 1px solid #ffd8a8; padding: 6px 20px; font-size: 13px; }
            table { border-collapse: collapse; margin: 8px 0 16px; background: #fff; }
            th, td { border: 1px solid #e3e3e3; padding: 4px 9px; text-align: left; vertical-align: top; }
            th { background: #f2f4f7; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
            .state { padding: 1px 7px; border-radius: 9px; font-size: 12px; }
            .error { color: #b3261e; } .muted { color: #6b7280; } pre { background: #fff; border: 1px solid #e3e3e3; padding: 8px; overflow-x: auto; }
            .cards { display: flex; gap: 12px; flex-wrap: wrap; } .card { background: #fff; border: 1px solid #e3e3e3; padding: 8px 14px; min-width: 90px; }
            .card b { display: block; font-size: 20px; } form.inline { display: inline; } nav.pager { margin: 8px 0; }
            </style></head><body>
            <header><strong>JobStore</strong><a href="\(link("/"))">Overview</a><a href="\(link("/jobs"))">Jobs</a><a href="\(link("/pipelines"))">Pipelines</a><a href="\(link("/schedules"))">Schedules</a><a href="\(link("/errors"))">Errors</a><a href="\(link("/workers"))">Workers</a><a href="\(link("/metrics"))">Metrics</a>
            <span class=muted style="margin-left:auto;color:#9fb3c8">\(html(store.locationDescription))</span></header>
            \(banner)
            <main><h1>\(html(title))</h1>
            \(body)
            </main>
            <script>
            // Each time's tooltip in the browser's local time too (the text is relative to now).
            function localTimes() {
              for (const t of document.querySelectorAll("time[datetime]")) t.title = new Date(t.dateTime).toLocaleString() + " local · " + t.dateTime;
            }
            localTimes();
            </script>\(script)</body></html>
            """
        return Response.text(document, status: status, contentType: "text/html; charset=utf-8")
    }

    func stateBadge(_ state: JobState) -> String {
        "<span class=state style=\"background:\(color(state))\">\(state)</span>"
    }

    // MARK: Overview

    func overviewPage() async throws -> Response {
        let counts = try await store.counts()
        await throughput.refresh(from: store)
        let body = """
            <div id=states class=cards>\(stateCountsHTML(counts))</div>
            <h2>Finished per 10 seconds, last 10 minutes</h2>
            <div id=chart>\(throughput.chartSVG())</div>
            <h2>Queues</h2>
            <table><thead><tr><th>queue</th><th>paused</th>\(JobState.allCases.map { "<th>\($0)</th>" }.joined())<th>oldest ready since</th><th>rate limit</th>\(options.allowWrites ? "<th>controls</th>" : "")</tr></thead>
            <tbody id=queues>\(try await queueRowsHTML())</tbody></table>
            <h2>Pipelines</h2>
            <div id=pipelines class=cards>\(pipelineCountsHTML(try await store.pipelineCounts()))</div>
            <h2>Store</h2>
            <table>
            \(try await storeRowsHTML())
            </table>
            \(pruneForm())
            <p class=muted>Live: counts, queues and the chart follow every commit (Server-Sent Events on a change mark of the store, checked every \(Readable.duration(store.changePollInterval))).</p>
            """
        return page(title: "Overview", body: body, live: true)
    }

    /// The overview's store table: the backend's storage facts (LMDB's environment; where a
    /// PostgreSQL store is and its size), the change mark updated live.
    func storeRowsHTML() async throws -> String {
        try await store.storageFacts().map { fact in
            "<tr><th>\(html(fact.label))</th><td\(fact.isChangeMark ? " id=transaction" : "")>\(html(fact.text))</td></tr>"
        }.joined(separator: "\n")
    }

    func stateCountsHTML(_ counts: [JobState: Int]) -> String {
        JobState.allCases.map { state in
            "<a class=card href=\"\(link("/jobs?state=\(state)"))\" style=\"border-top:4px solid \(color(state));text-decoration:none;color:inherit\"><b>\(counts[state] ?? 0)</b>\(state)</a>"
        }.joined()
    }

    func pipelineCountsHTML(_ counts: [PipelineState: Int]) -> String {
        PipelineState.allCases.map { state in
            "<a class=card href=\"\(link("/pipelines?state=\(state)"))\" style=\"text-decoration:none;color:inherit\"><b>\(counts[state] ?? 0)</b>\(state)</a>"
        }.joined()
    }

    func queueRowsHTML() async throws -> String {
        let queues = try await store.queues()
        if queues.isEmpty { return "<tr><td colspan=10 class=muted>no queue has jobs</td></tr>" }
        return queues.map { queue in
            let cells = JobState.allCases.map { state in
                "<td class=num><a href=\"\(link("/jobs?state=\(state)&queue=\(urlEscaped(queue.name))"))\">\(queue.counts[state] ?? 0)</a></td>"
            }.joined()
            let rate = queue.rateLimit.map { "\($0.starts) per \(RateLimit.text(of: $0.period))" } ?? "-"
            return "<tr><td>\(html(queue.name))</td><td>\(queue.pausedAt.map { "since \(when($0))" } ?? "no")</td>\(cells)<td>\(queue.oldestReadyAt.map { when($0) } ?? "-")</td><td>\(html(rate))</td>\(queueControls(queue))</tr>"
        }.joined()
    }

    /// A queue row's controls, with --allow-writes: pause or resume, set a rate limit (starts
    /// per seconds), remove it. Each a form posting the queue's name and the page's CSRF field.
    func queueControls(_ queue: QueueSummary) -> String {
        guard options.allowWrites else { return "" }
        func form(_ action: QueueAction, _ fields: String = "", confirm: String) -> String {
            "<form class=inline method=post action=\"\(link("/queues/\(action.rawValue)"))\" onsubmit=\"return confirm('\(html(jsEscaped(confirm)))')\"><input type=hidden name=csrf value=\"\(csrf)\"><input type=hidden name=queue value=\"\(html(queue.name))\">\(fields)<button>\(action.rawValue.capitalized)</button></form>"
        }
        let starts = queue.rateLimit?.starts ?? 10
        let seconds = queue.rateLimit.map { max(1, Int($0.period.components.seconds)) } ?? 1
        var controls = [
            queue.pausedAt == nil
                ? form(.pause, confirm: "Pause queue \(queue.name)? No job of it starts until it is resumed.")
                : form(.resume, confirm: "Resume queue \(queue.name)?"),
            form(
                .limit,
                "<input name=starts type=number min=1 value=\(starts) style=\"width:5em\"> per <input name=seconds type=number min=1 value=\(seconds) style=\"width:4em\"> s ",
                confirm: "Limit queue \(queue.name)?"),
        ]
        if queue.rateLimit != nil { controls.append(form(.unlimit, confirm: "Remove the rate limit of queue \(queue.name)?")) }
        return "<td style=\"white-space:nowrap\">\(controls.joined(separator: " "))</td>"
    }

    /// `GET /schedules`: the periodic jobs the store knows (registered by the schedulers that
    /// run them), with their timing and their last and next ticks.
    func schedulesPage(_ query: [String: String]) async throws -> Response {
        try requireKnown(query, ["enqueued"])
        let schedules = try await store.schedules()
        let rows = schedules.isEmpty
            ? "<tr><td colspan=9 class=muted>no periodic job is registered (a scheduler registers its schedules when it starts)</td></tr>"
            : schedules.map { schedule in
                "<tr><td>\(html(schedule.name))</td><td><code>\(html(schedule.timing))</code></td><td>\(html(schedule.timeZone))</td><td><a href=\"\(link("/jobs?queue=\(urlEscaped(schedule.queue))"))\">\(html(schedule.queue))</a></td><td>\(html(schedule.jobName))</td><td>\(schedule.missedTicks)</td><td>\(schedule.lastTick.map { when($0) } ?? "-")</td><td>\(schedule.nextTick.map { when($0) } ?? "-")</td>\(runNowControl(schedule))</tr>"
            }.joined()
        let done = query["enqueued"].flatMap { try? JobID(parsing: $0) }.map {
            "<p><b>Enqueued job <a href=\"\(link("/jobs/\($0)"))\">\($0)</a> to run now.</b></p>"
        } ?? ""
        let body = """
            \(done)<table><thead><tr><th>schedule</th><th>timing</th><th>time zone</th><th>queue</th><th>job</th><th>missed ticks</th><th>last tick</th><th>next tick</th><th></th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <p class=muted>Each tick enqueues one job across every process (the store records the last tick). "Run now" enqueues one more, as the schedule's scheduler registered it; the ticks go on as before.</p>
            """
        return page(title: "Periodic jobs", body: body)
    }

    /// A schedule row's "Run now" (with --allow-writes): a form posting its name and the page's
    /// CSRF field; for a schedule registered without its job, why there is none.
    func runNowControl(_ schedule: ScheduleRecord) -> String {
        guard options.allowWrites else { return "<td></td>" }
        guard schedule.job != nil else {
            return "<td class=muted title=\"registered by a version of JobStore that did not keep the job; its scheduler's next start registers it\">job not kept</td>"
        }
        let confirm = "Enqueue a job of schedule \(schedule.name) to run now?"
        return "<td><form class=inline method=post action=\"\(link("/schedules/run-now"))\" onsubmit=\"return confirm('\(html(jsEscaped(confirm)))')\"><input type=hidden name=csrf value=\"\(csrf)\"><input type=hidden name=schedule value=\"\(html(schedule.name))\"><button>Run now</button></form></td>"
    }

    func pruneForm() -> String {
        guard options.allowWrites else { return "" }
        let states = ["succeeded", "failed", "cancelled"].map { "<option>\($0)</option>" }.joined()
        return """
            <h2>Prune</h2>
            <form method=get action="\(link("/prune"))">
            Delete <select name=state>\(states)</select> jobs and pipelines that finished more than
            <input name=days type=number min=0 value=7 style="width:5em"> days ago <button>Preview…</button></form>
            """
    }

    /// `GET /prune?state=…&days=…`: how many jobs and pipelines a prune would delete (read from
    /// the indexes, nothing changed), and the button that deletes them.
    func prunePreview(_ query: [String: String]) async throws -> Response {
        guard options.allowWrites else { return readOnlyPage() }
        try requireKnown(query, ["state", "days"])
        let (state, days) = try pruneRequest(query)
        let cutoff = Timestamp.now.adding(.seconds(-days * 86_400))
        let (jobs, pipelines) = try await store.prune(state, .finishedBefore(cutoff), batchSize: 1000, dryRun: true)
        let body = """
            <p>Would delete <b>\(jobs) \(state) job(s)</b> and <b>\(pipelines) pipeline(s)</b> (with their steps' jobs) that finished before \(when(cutoff)) — more than \(days) day(s) ago. Nothing is deleted yet.</p>
            <form method=post action="\(link("/prune"))"><input type=hidden name=csrf value="\(csrf)">
            <input type=hidden name=state value="\(state)"><input type=hidden name=days value="\(days)">
            <button>Delete \(jobs) job(s) and \(pipelines) pipeline(s)</button></form>
            <p><a href="\(link("/"))">Cancel</a></p>
            """
        return page(title: "Prune: preview", body: body)
    }

    /// The state and days of a prune (a form or a query), or a 400.
    func pruneRequest(_ fields: [String: String]) throws -> (JobState, Int) {
        guard let name = fields["state"], let state = JobState(name: name), state.isTerminal else {
            throw PageError.badRequest("state must be succeeded, failed or cancelled")
        }
        guard let days = fields["days"].flatMap(Int.init), days >= 0, days <= 36_500 else {
            throw PageError.badRequest("days must be a whole number of days, 0…36500")
        }
        return (state, days)
    }

    // MARK: Jobs

    /// The limit a request asks for, within the dashboard's bounds (a page never loads more).
    func limit(_ query: [String: String]) throws -> Int {
        guard let text = query["limit"] else { return options.pageSize }
        guard let limit = Int(text), limit >= 1 else { throw PageError.badRequest("limit must be a whole number from 1, not '\(text)'") }
        return min(limit, options.maxPageSize)
    }

    /// The fields of the job list's filter, in its query and in a bulk action's form.
    static let filterFields = ["state", "queue", "name", "payload", "error", "since", "until"]

    /// The filter that `fields` (a query or a form) ask for, or a 400 naming the bad field. Only
    /// the index range and the checks: a page's bound is the caller's.
    func jobFilter(_ fields: [String: String]) throws -> JobFilter {
        func given(_ key: String) -> String? { fields[key].flatMap { $0.isEmpty ? nil : $0 } }
        var filter = JobFilter(queue: given("queue"), name: given("name"), payloadContains: given("payload"), errorContains: given("error"))
        if let text = given("state") {
            guard let state = JobState(name: text) else {
                throw PageError.badRequest("'\(text)' is not a state; states: \(JobState.allCases.map(\.description).joined(separator: ", "))")
            }
            filter.state = state
        }
        if let since = given("since") { filter.createdFrom = try parseTime(since, "since") }
        if let until = given("until") { filter.createdUntil = try parseTime(until, "until") }
        return filter
    }

    /// The job list: a filter (state and creation time pick the index range; queue, name,
    /// payload text and error text are checked on each job of it, at most
    /// ``DashboardOptions/searchBudget`` a page), a job id to go to, and with actions the
    /// rows' checkboxes and a bulk action.
    func jobsPage(_ query: [String: String]) async throws -> Response {
        try requireKnown(query, Dashboard.filterFields + ["order", "limit", "after", "id"])
        if let text = query["id"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            let id = try parseJobID(text)
            guard try await store.job(id) != nil else { throw PageError.notFound("no job \(id) in this store") }
            return Response(status: .seeOther, headers: [.location: link("/jobs/\(id)")])
        }
        var filter = try jobFilter(query)
        if filter.checksEachJob { filter.examineAtMost = options.searchBudget }
        let after: PageCursor?
        do { after = try query["after"].map { try PageCursor(parsing: $0) } } catch {
            throw PageError.badRequest("'after' is not a page cursor: \(error)")
        }
        let order: ListOrder = query["order"] == "newest" ? .newestFirst : .oldestFirst
        let limit = try limit(query)
        let page = try await store.jobs(matching: filter, order: order, limit: limit, after: after)

        let selectable = options.allowWrites
        var rows = page.jobs.map { job in
            """
            <tr>\(selectable ? "<td><input type=checkbox name=ids value=\"\(job.id)\" form=bulk aria-label=\"select \(job.id)\"></td>" : "")<td><a href="\(link("/jobs/\(job.id)"))">\(job.id)</a></td><td>\(stateBadge(job.state))</td><td>\(html(job.queue))</td>
            <td>\(html(job.name))</td><td class=num>\(job.priority)</td><td class=num>\(job.attempts)/\(job.maxAttempts)</td><td>\(when(job.createdAt))</td><td>\(when(job.runAt))</td></tr>
            """
        }.joined(separator: "\n")
        if page.jobs.isEmpty { rows = "<tr><td colspan=9 class=muted>no job matches\(page.next != nil ? " among those looked at" : "")</td></tr>" }
        let kept = (Dashboard.filterFields + ["order", "limit"]).compactMap { key in query[key].map { "\(key)=\(urlEscaped($0))&" } }
        let base = "/jobs?" + kept.joined()
        // A search page that stopped at the bound before it was full goes on from where it stopped.
        let stoppedEarly = page.examined != nil && page.jobs.count < limit && page.next != nil
        let scope = page.examined.map { examined in
            "<p class=muted id=examined>Looked at \(examined) job\(examined == 1 ? "" : "s") of the range for this page (at most \(options.searchBudget)); \(page.jobs.count) matched.</p>"
        } ?? ""
        let next = page.next.map {
            "<a href=\"\(link(base + "after=\(urlEscaped($0.description))"))\">\(stoppedEarly ? "search on →" : "next page →")</a>"
        } ?? "<span class=muted>last page</span>"
        let states = ([""] + JobState.allCases.map(\.description)).map { name in
            "<option value=\"\(name)\"\(filter.state?.description == name ? " selected" : "")>\(name.isEmpty ? "any state" : name)</option>"
        }.joined()
        func field(_ key: String, _ placeholder: String) -> String {
            "<input name=\(key) placeholder=\"\(placeholder)\" value=\"\(html(query[key] ?? ""))\">"
        }
        let bulk = selectable ? """
            <form id=bulk method=post action="\(link("/jobs/bulk"))"><input type=hidden name=csrf value="\(csrf)">
            \(Dashboard.filterFields.compactMap { key in query[key].map { "<input type=hidden name=\(key) value=\"\(html($0))\">" } }.joined())
            <select name=action>\(OperatorChange.allCases.map { "<option value=\($0.rawValue)>\($0.rawValue)</option>" }.joined())</select>
            <label><input type=radio name=scope value=selected checked> the selected jobs</label>
            <label><input type=radio name=scope value=matching> every job matching the filter</label>
            <button>Preview</button> <span class=muted>(shows how many jobs it changes before it does)</span></form>
            """ : ""
        let body = """
            <form method=get action="\(link("/jobs"))">
            <select name=state>\(states)</select>
            \(field("queue", "queue")) \(field("name", "name"))
            \(field("payload", "payload contains")) \(field("error", "error contains"))
            \(field("since", "since (2h, 2026-11-23)")) \(field("until", "until"))
            <select name=order><option value=oldest>oldest first</option><option value=newest\(order == .newestFirst ? " selected" : "")>newest first</option></select>
            <button>Filter</button></form>
            <form method=get action="\(link("/jobs"))"><input name=id placeholder="job id" size=34><button>Go to job</button></form>
            \(scope)
            <table><thead><tr>\(selectable ? "<th></th>" : "")<th>id</th><th>state</th><th>queue</th><th>name</th><th>prio</th><th>tries</th><th>created</th><th>run at</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <nav class=pager>\(next)</nav>
            \(bulk)
            """
        return self.page(title: "Jobs", body: body)
    }

    func jobPage(_ text: String, notice: String?) async throws -> Response {
        let id = try parseJobID(text)
        guard let job = try await store.job(id) else { throw PageError.notFound("no job \(id) in this store") }
        let timeline = try await store.events(of: id)
        var rows: [(String, String)] = [
            ("id", "\(job.id)"), ("name", html(job.name)), ("queue", html(job.queue)), ("tenant", html(job.tenant ?? "-")),
            ("state", "<span id=job-state>\(stateBadge(job.state))</span>"), ("priority", "\(job.priority)"),
            ("attempts", "<span id=job-attempts>\(job.attempts) of \(job.maxAttempts)</span>"),
            ("progress", "<span id=progress>\(progressHTML(try await store.progress(of: id)))</span>"),
            ("created", when(job.createdAt)), ("updated", when(job.updatedAt)), ("run at", when(job.runAt)),
            ("lease", job.lease.map { "until \(when($0.expiresAt)), owner \($0.owner)" } ?? "-"), ("unique key", html(job.uniqueKey ?? "-")),
            ("timeout", job.timeout.map { "\($0) (its own)" } ?? "-"),
            ("headers", job.headers.isEmpty ? "-" : job.headers.sorted { $0.key < $1.key }.map { "\(html($0.key)): \(html($0.value))" }.joined(separator: "<br>")),
        ]
        if let reference = job.pipeline {
            let details = try await store.pipelineDetails(reference.pipeline)
            let step = details?.steps.first { $0.index == Int(reference.step) }
            rows.append((
                "pipeline",
                "<a href=\"\(link("/pipelines/\(reference.pipeline)"))\">\(html(details?.pipeline.name ?? "\(reference.pipeline)"))</a>, step \(reference.step)\(step.map { " '\(html($0.name))'" } ?? "")"
            ))
        }
        rows.append(("payload", describe(job.payload)))
        if let result = job.result { rows.append(("result", describe(result))) }
        let errors = job.errors.isEmpty
            ? "<p class=muted>none</p>"
            : "<table><tr><th>attempt</th><th>at</th><th>message</th></tr>" + job.errors.map {
                "<tr><td class=num>\($0.attempt)</td><td>\(when($0.at))</td><td>\(html($0.message))</td></tr>"
            }.joined() + "</table>"
        let events = timeline.events.isEmpty
            ? "<p class=muted>none recorded (the job is from before store format 3)</p>"
            : (timeline.dropped > 0 ? "<p class=muted>\(timeline.dropped) older events dropped</p>" : "")
                + "<table><tr><th>at</th><th>event</th><th>state</th><th>attempts</th><th>details</th></tr>"
                + timeline.events.map { event in
                    "<tr><td>\(when(event.at))</td><td>\(event.kind)</td><td>\(stateBadge(event.state))</td><td class=num>\(event.attempts)</td><td>\(html(event.details))</td></tr>"
                }.joined() + "</table>"
        let body = """
            \(notice.map { "<p><b>\(html($0))</b></p>" } ?? "")
            <table>\(rows.map { "<tr><th>\($0.0)</th><td>\($0.1)</td></tr>" }.joined())</table>
            \(actions(job))
            <h2>Errors</h2>\(errors)
            <h2>Timeline</h2>\(events)
            """
        return page(title: "Job \(job.name)", body: body, live: !job.state.isTerminal, liveJob: id)
    }

    /// A job's progress: a bar, the share, the attempt, the message and when; "-" for none.
    func progressHTML(_ progress: JobProgress?) -> String {
        guard let progress else { return "-" }
        return "<progress value=\"\(progress.fraction)\" max=1></progress> \(progress.percentText) · attempt \(progress.attempt)"
            + (progress.message.map { " · \(html($0))" } ?? "") + " · \(when(progress.at))"
    }

    func actions(_ job: Job) -> String {
        guard options.allowWrites else { return "" }
        var offered: [JobAction] = []
        switch job.state {
        case .failed, .cancelled: offered = [.retry]
        case .running: offered = [.requeue, .cancel]
        case .pending: offered = [.cancel]
        case .waiting: offered = [.cancel]
        case .succeeded: offered = []
        }
        return offered.map { action in
            "<form class=inline method=post action=\"\(link("/jobs/\(job.id)/\(action.rawValue)"))\" onsubmit=\"return confirm('\(action.rawValue.capitalized) job \(html(jsEscaped(job.name)))?')\"><input type=hidden name=csrf value=\"\(csrf)\"><button>\(action.rawValue.capitalized)</button></form>"
        }.joined(separator: " ")
    }

    /// A pipeline's buttons, with --allow-writes: retry while a step failed or was cancelled,
    /// cancel while steps are unfinished.
    func actions(_ pipeline: Pipeline) -> String {
        guard options.allowWrites else { return "" }
        var offered: [JobAction] = []
        if pipeline.failedSteps + pipeline.cancelledSteps > 0 { offered.append(.retry) }
        if pipeline.unfinishedSteps > 0 { offered.append(.cancel) }
        return offered.map { action in
            "<form class=inline method=post action=\"\(link("/pipelines/\(pipeline.id)/\(action.rawValue)"))\" onsubmit=\"return confirm('\(action.rawValue.capitalized) pipeline \(html(jsEscaped(pipeline.name))): \(action == .retry ? "\(pipeline.failedSteps + pipeline.cancelledSteps) failed or cancelled step(s) run again" : "\(pipeline.unfinishedSteps) unfinished step(s) cancelled")?')\"><input type=hidden name=csrf value=\"\(csrf)\"><button>\(action.rawValue.capitalized) pipeline</button></form>"
        }.joined(separator: " ")
    }

    func describe(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "<span class=muted>(empty)</span>" }
        if let text = Readable.text(bytes) { return "\(bytes.count) bytes, text:<pre>\(html(text))</pre>" }
        return "\(bytes.count) bytes, hex:<pre>\(html(Readable.hexDump(bytes)))</pre>"
    }

    // MARK: Pipelines

    func pipelinesPage(_ query: [String: String]) async throws -> Response {
        try requireKnown(query, ["state", "order", "limit", "after"])
        var state: PipelineState?
        if let text = query["state"], !text.isEmpty {
            guard let parsed = PipelineState(name: text) else {
                throw PageError.badRequest("'\(text)' is not a pipeline state; states: \(PipelineState.allCases.map(\.description).joined(separator: ", "))")
            }
            state = parsed
        }
        let after: PipelineCursor?
        do { after = try query["after"].map { try PipelineCursor(parsing: $0) } } catch {
            throw PageError.badRequest("'after' is not a page cursor: \(error)")
        }
        let page = try await store.pipelines(in: state, order: query["order"] == "newest" ? .newestFirst : .oldestFirst, limit: try limit(query), after: after)
        var rows = page.pipelines.map { pipeline in
            """
            <tr><td><a href="\(link("/pipelines/\(pipeline.id)"))">\(pipeline.id)</a></td><td>\(html(pipeline.name))</td><td class=num>\(pipeline.version)</td>
            <td>\(pipeline.state)</td><td>\(Readable.steps(pipeline))</td><td>\(when(pipeline.createdAt))</td><td>\(pipeline.finishedAt.map { when($0) } ?? "-")</td></tr>
            """
        }.joined(separator: "\n")
        if page.pipelines.isEmpty { rows = "<tr><td colspan=7 class=muted>no pipeline matches</td></tr>" }
        let base = "/pipelines?" + (state.map { "state=\($0)&" } ?? "")
        let next = page.next.map { "<a href=\"\(link(base + "after=\(urlEscaped($0.description))"))\">next page →</a>" } ?? "<span class=muted>last page</span>"
        let filters = ([nil] + PipelineState.allCases.map { Optional($0) }).map { option in
            "<a href=\"\(link("/pipelines" + (option.map { "?state=\($0)" } ?? "")))\">\(option.map(\.description) ?? "all")</a>"
        }.joined(separator: " · ")
        let body = """
            <p>\(filters)</p>
            <table><thead><tr><th>id</th><th>name</th><th>version</th><th>state</th><th>steps</th><th>created</th><th>finished</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <nav class=pager>\(next)</nav>
            """
        return self.page(title: state.map { "Pipelines: \($0)" } ?? "Pipelines", body: body)
    }

    func pipelinePage(_ text: String, notice: String?) async throws -> Response {
        let id = try parsePipelineID(text)
        guard let details = try await store.pipelineDetails(id) else { throw PageError.notFound("no pipeline \(id) in this store") }
        let pipeline = details.pipeline
        var timelines: [JobTimeline] = []
        for job in details.jobs { timelines.append(try await store.events(of: job.id)) }
        let now = Timestamp.now
        let dependencies = details.dependencies
        let rows = details.steps.map { step in
            let job = details.jobs[step.index]
            let run = Readable.lastRun(timelines[step.index].lastRun(now: now))
            let waits = step.remainingDependencies == 0 ? "-" : "\(step.remainingDependencies) of \(dependencies[step.index].count)"
            return """
                <tr><td class=num>\(step.index)</td><td>\(html(step.name))</td><td>\(stateBadge(job.state))</td><td><a href="\(link("/jobs/\(job.id)"))">\(job.id)</a></td>
                <td class=num>\(job.attempts)/\(job.maxAttempts)</td><td>\(waits)</td><td class=num>\(run.queued)</td><td class=num>\(run.ran)</td></tr>
                """
        }.joined(separator: "\n")
        let body = """
            \(notice.map { "<p><b>\(html($0))</b></p>" } ?? "")
            <p>\(html(pipeline.name)) version \(pipeline.version)\(pipeline.failFast ? ", fail-fast" : "") — <b>\(pipeline.state)</b>:
            \(pipeline.succeededSteps) succeeded, \(pipeline.failedSteps) failed, \(pipeline.cancelledSteps) cancelled, \(pipeline.unfinishedSteps) unfinished of \(pipeline.stepCount).
            Created \(when(pipeline.createdAt))\(pipeline.finishedAt.map { ", finished \(when($0))" } ?? "").</p>
            \(actions(pipeline))
            <div id=dag>\(dagSVG(details))</div>
            <table><thead><tr><th>#</th><th>step</th><th>state</th><th>job</th><th>tries</th><th>waits for</th><th>queued</th><th>ran</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
        return page(title: "Pipeline \(pipeline.name)", body: body)
    }

    // MARK: Helpers

    /// A point in time from a query (``Readable/parseTime(_:now:)``), or a 400 naming the field.
    func parseTime(_ text: String, _ name: String) throws -> Timestamp {
        do { return try Readable.parseTime(text) } catch { throw PageError.badRequest("\(name): \(error.description)") }
    }
}
