import Foundation
import Hummingbird
import JobCore
import JobStoreText

extension Dashboard {
    // MARK: Bulk actions

    /// `POST /jobs/bulk`: an operator change to many jobs — the rows ticked on the job list
    /// (`scope=selected`, each `ids`) or every job its filter matches (`scope=matching`). Without
    /// `confirm=1` it changes nothing: it makes the change and rolls it back, and shows how many
    /// jobs it would change and what it would refuse, with a button to do it. With it, the change
    /// in transactions of ``bulkBatch`` jobs whose events name the dashboard as the actor.
    func bulk(_ request: Request) async -> Response {
        let body = await formBody(request, limit: 4 << 20)  // room for a few thousand ticked rows
        let form = parseForm(body)
        if let refused = refusal(request, form: form) { return refused }
        return await respond {
            guard let change = form["action"].flatMap(OperatorChange.init(rawValue:)) else {
                throw PageError.badRequest(
                    "action must be one of \(OperatorChange.allCases.map(\.rawValue).joined(separator: ", ")), not '\(form["action"] ?? "")'")
            }
            let filter = try jobFilter(form)
            let ids: [JobID]
            let selection: String
            switch form["scope"] {
            case "selected":
                ids = try formValues(body, "ids").map(parseJobID)
                guard !ids.isEmpty else {
                    throw PageError.badRequest("no job is selected: tick the rows' boxes, or choose every job matching the filter")
                }
                selection = "the \(ids.count) selected job\(ids.count == 1 ? "" : "s")"
            case "matching":
                ids = try await matchingIDs(filter)
                selection = "the \(ids.count) job\(ids.count == 1 ? "" : "s") matching \(describe(filter))"
            default:
                throw PageError.badRequest("scope must be 'selected' or 'matching', not '\(form["scope"] ?? "")'")
            }
            let confirmed = form["confirm"] == "1"
            let (changed, refusals) = try await apply(change, to: ids, dryRun: !confirmed)
            var back = "/jobs?" + Dashboard.filterFields.compactMap { key in form[key].map { "\(key)=\(urlEscaped($0))" } }.joined(separator: "&")
            if back.hasSuffix("?") { back.removeLast() }
            let refused = refusalsHTML(refusals)
            guard confirmed else {
                let hidden = (["action", "scope"] + Dashboard.filterFields).compactMap { key in
                    form[key].map { "<input type=hidden name=\(key) value=\"\(html($0))\">" }
                } + (form["scope"] == "selected" ? ids.map { "<input type=hidden name=ids value=\"\($0)\">" } : [])
                let button = changed > 0
                    ? """
                    <form method=post action="\(link("/jobs/bulk"))"><input type=hidden name=csrf value="\(csrf)">\(hidden.joined())
                    <input type=hidden name=confirm value=1><input type=hidden name=expected value=\(ids.count)>
                    <button id=confirm>\(change.rawValue.capitalized) \(changed) job\(changed == 1 ? "" : "s")</button></form>
                    """
                    : "<p>Nothing to do.</p>"
                return page(title: "\(change.rawValue.capitalized) jobs: preview", body: """
                    <p id=preview>\(change.rawValue.capitalized) \(html(selection)): <b>\(changed) would be \(change.done)</b>\(refusals.isEmpty ? "" : ", \(refusals.count) refused"). Nothing is changed yet.</p>
                    \(refused)\(button)
                    <p><a href="\(link(back))">Back to the list</a></p>
                    """)
            }
            let expected = form["expected"].flatMap { Int($0) }
            let drift = expected.map { $0 == ids.count ? "" : " (\($0) at the preview: the jobs changed meanwhile)" } ?? ""
            return page(title: "\(change.rawValue.capitalized) jobs: done", body: """
                <p id=done>\(change.rawValue.capitalized): <b>\(changed) job\(changed == 1 ? "" : "s") \(change.done)</b> of \(html(selection))\(drift)\(refusals.isEmpty ? "" : ", \(refusals.count) refused").
                Each change is in the history by \(html(Dashboard.actor)).</p>
                \(refused)
                <p><a href="\(link(back))">Back to the list</a></p>
                """)
        }
    }

    /// Jobs per transaction of a bulk action.
    static let bulkBatch = 1000

    /// Every job `filter` matches (no page bound: an action takes them all), from the indexes.
    func matchingIDs(_ filter: JobFilter) async throws -> [JobID] {
        var ids: [JobID] = []
        var cursor: PageCursor?
        repeat {
            let page = try await store.jobs(matching: filter, order: .oldestFirst, limit: Dashboard.bulkBatch, after: cursor)
            ids += page.jobs.map(\.id)
            cursor = page.next
        } while cursor != nil
        return ids
    }

    /// Applies `change` to `ids` in batches (each one transaction, rolled back with `dryRun`):
    /// how many it changed and what refused the others.
    func apply(_ change: OperatorChange, to ids: [JobID], dryRun: Bool) async throws -> (changed: Int, refusals: [JobStoreError]) {
        var changed = 0
        var refusals: [JobStoreError] = []
        for start in stride(from: 0, to: ids.count, by: Dashboard.bulkBatch) {
            let batch = Array(ids[start..<min(start + Dashboard.bulkBatch, ids.count)])
            for result in try await store.apply(change, toJobs: batch, actor: Dashboard.actor, dryRun: dryRun) {
                switch result {
                case .success: changed += 1
                case .failure(let error): refusals.append(error)
                }
            }
        }
        return (changed, refusals)
    }

    /// The refusals of a bulk action by kind, each with how many and one of them.
    func refusalsHTML(_ refusals: [JobStoreError]) -> String {
        guard !refusals.isEmpty else { return "" }
        let kinds = Dictionary(grouping: refusals, by: \.code.description).sorted { $0.value.count > $1.value.count }
        return "<table id=refusals><tr><th>refused</th><th>jobs</th><th>for example</th></tr>"
            + kinds.map { "<tr><td>\(html($0.key))</td><td class=num>\($0.value.count)</td><td>\(html($0.value[0].message))</td></tr>" }.joined()
            + "</table>"
    }

    /// A filter for people: "state failed, error containing 'timeout'"; "every job" when empty.
    func describe(_ filter: JobFilter) -> String {
        var parts: [String] = []
        if let state = filter.state { parts.append("state \(state)") }
        if let queue = filter.queue { parts.append("queue '\(queue)'") }
        if let name = filter.name { parts.append("name '\(name)'") }
        if let text = filter.payloadContains { parts.append("payload containing '\(text)'") }
        if let text = filter.errorContains { parts.append("an error containing '\(text)'") }
        if let from = filter.createdFrom { parts.append("created from \(from)") }
        if let until = filter.createdUntil { parts.append("created before \(until)") }
        return parts.isEmpty ? "no filter (every job)" : parts.joined(separator: ", ")
    }

    // MARK: Common errors

    /// `/errors?since=1h`: the ten most common last errors of the jobs that failed since then,
    /// each with how many, the newest and a link to the list of its jobs.
    func errorsPage(_ query: [String: String]) async throws -> Response {
        try requireKnown(query, ["since"])
        let sinceText = query["since"].flatMap { $0.isEmpty ? nil : $0 } ?? "1h"
        let since = try parseTime(sinceText, "since")
        let summary = try await store.commonErrors(since: since, limit: 10, examineAtMost: 10_000)
        let rows = summary.groups.map { group in
            let jobs = "/jobs?state=failed&error=\(urlEscaped(group.message))&order=newest"
            return """
                <tr><td class=num><a href="\(link(jobs))">\(group.count)</a></td><td>\(html(group.message))</td>\
                <td>\(when(group.latest))</td><td><a href="\(link("/jobs/\(group.latestJob)"))">\(group.latestJob)</a></td></tr>
                """
        }.joined(separator: "\n")
        let scope = summary.examined == 0
            ? "No job failed since \(when(since))."
            : summary.complete
                ? "\(summary.examined) job\(summary.examined == 1 ? "" : "s") failed since \(when(since)); their last errors, the commonest first."
                : "The newest \(summary.examined) of the jobs that failed since \(when(since)); their last errors, the commonest first."
        let periods = ["15m", "1h", "6h", "24h", "7d"].map { period in
            period == sinceText ? "<b>\(period)</b>" : "<a href=\"\(link("/errors?since=\(period)"))\">\(period)</a>"
        }.joined(separator: " · ")
        let body = """
            <p>Since: \(periods)</p>
            <p id=errors-scope>\(scope)</p>
            \(summary.groups.isEmpty ? "" : "<table id=errors><thead><tr><th>jobs</th><th>error</th><th>newest</th><th>newest job</th></tr></thead><tbody>\(rows)</tbody></table>")
            """
        return page(title: "Errors", body: body)
    }
}

extension Dashboard {
    // MARK: Workers

    /// `/workers`: the running schedulers from their heartbeats — host, pid, since when, last
    /// beat (gone after three missed), handlers busy of how many, queues — and every job their
    /// handlers run, with how long it has run (Sidekiq's "Busy" page).
    func workersPage() async throws -> Response {
        let workers = try await store.workers()
        let now = Timestamp.now
        let rows = workers.isEmpty
            ? "<tr><td colspan=7 class=muted>no scheduler is running (none wrote a heartbeat in the last hour)</td></tr>"
            : workers.map { worker in
                let gone = worker.isGone(at: now)
                return """
                    <tr\(gone ? " class=muted" : "")><td><code>\(worker.id.description.prefix(8))</code></td><td>\(html(worker.host))</td><td class=num>\(worker.pid)</td>\
                    <td>\(when(worker.startedAt, now: now))</td><td>\(gone ? "<b class=error>gone</b>, " : "")\(when(worker.beatAt, now: now))</td>\
                    <td class=num>\(worker.running.count) / \(worker.concurrency)</td><td>\(worker.queues.map { "<a href=\"\(link("/jobs?queue=\(urlEscaped($0))"))\">\(html($0))</a>" }.joined(separator: ", "))</td></tr>
                    """
            }.joined(separator: "\n")
        let running = workers.flatMap { worker in worker.running.map { (worker, $0) } }
        let jobRows = running.map { worker, job in
            """
            <tr><td><code>\(worker.id.description.prefix(8))</code> \(html(worker.host))</td><td><a href="\(link("/jobs/\(job.id)"))">\(job.id)</a></td>\
            <td>\(html(job.queue))</td><td>\(html(job.name))</td><td>\(Readable.duration(.microseconds(max(0, now.microseconds - job.since.microseconds))))</td></tr>
            """
        }.joined(separator: "\n")
        let body = """
            <table id=workers><thead><tr><th>scheduler</th><th>host</th><th>pid</th><th>started</th><th>last heartbeat</th><th>busy</th><th>queues</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <h2>Running jobs (\(running.count))</h2>
            \(running.isEmpty ? "<p class=muted>none</p>" : "<table id=running><thead><tr><th>scheduler</th><th>job</th><th>queue</th><th>name</th><th>running for</th></tr></thead><tbody>\(jobRows)</tbody></table>")
            <p class=muted>Each scheduler writes its heartbeat every few seconds (SchedulerOptions.heartbeatInterval) and deletes it when it stops; one that missed three is gone — it died or stalls, and its jobs are rescued when their leases expire.</p>
            """
        return page(title: "Workers", body: body)
    }
}
