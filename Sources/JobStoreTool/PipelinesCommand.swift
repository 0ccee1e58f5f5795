import ArgumentParser
import Foundation
import JobStore
import JobStoreLines
import JobStoreText

/// `jobstore pipelines …`: list, show and delete pipelines.
struct Pipelines: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show and delete pipelines.",
        subcommands: [List.self, Show.self, Delete.self])

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete pipelines, each with its steps and their jobs, in any state (a running step's worker is refused when it reports).",
            discussion: "`jobstore delete PIPELINE_ID` does the same. Try --dry-run first.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Only say what would be deleted: each deletion is rehearsed and rolled back.")
        var dryRun = false
        @Argument(help: "Pipeline ids, or '-' to read them from stdin.")
        var ids: [String]

        func run() async throws {
            try await changeEach(store, try givenIDs(ids), .delete, dryRun: dryRun, pipelinesOnly: true)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List pipelines by creation time, a page at a time.",
            discussion: "With --state the listing reads idx.pipeline_state_created, otherwise the pipelines database (ids are time-ordered).")

        @OptionGroup var store: StoreOptions
        @Option(
            help: "Only pipelines in this state: \(PipelineState.allCases.map(\.description).joined(separator: ", ")).",
            completion: .list(PipelineState.allCases.map(\.description)))
        var state: String?
        @OptionGroup var paging: PagingOptions
        @Flag(help: "Print times in UTC instead of relative to now (\"3m ago\").")
        var utc = false

        func validate() throws {
            guard Validation.enabled else { return }
            if let state, PipelineState(name: state) == nil {
                throw ValidationError("'\(state)' is not a pipeline state; states: \(PipelineState.allCases.map(\.description).joined(separator: ", "))")
            }
        }

        struct Output: Encodable {
            var pipelines: [PipelineJSON]
            var next: String?
        }

        func run() async throws {
            let cursor = try paging.cursor(PipelineCursor.init(parsing:))
            let page = try await OpenedStore.with(store) {
                try await $0.store.pipelines(in: state.flatMap(PipelineState.init(name:)), order: paging.order, limit: paging.limit, after: cursor)
            }
            if store.json {
                try printJSON(Output(pipelines: page.pipelines.map(PipelineJSON.init), next: page.next?.description))
                return
            }
            var table = Table("id", "name", "version", "state", "steps", "created", "finished")
            table.states = [3]
            table.shrinkable = [1]
            let now = Timestamp.now
            for pipeline in page.pipelines {
                table.add([
                    pipeline.id.description, pipeline.name, "\(pipeline.version)", pipeline.state.description,
                    Readable.steps(pipeline), shown(pipeline.createdAt, utc: utc, now: now),
                    pipeline.finishedAt.map { shown($0, utc: utc, now: now) } ?? "-",
                ])
            }
            print(table.render())
            print(paging.footer(next: page.next, count: page.pipelines.count, noun: "pipeline"))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a pipeline: its steps and their jobs' states, and its DAG drawn layer by layer.",
            discussion: "--dot prints the DAG for Graphviz instead (e.g. `jobstore pipelines show PATH ID --dot | dot -Tsvg > p.svg`).")

        @OptionGroup var store: StoreOptions
        @Argument(help: "The pipeline's id.")
        var id: String
        @Flag(help: "Print the DAG in Graphviz's DOT language.")
        var dot = false

        func run() async throws {
            let id: PipelineID
            do { id = try PipelineID(parsing: self.id) } catch { throw ValidationError("\(error)") }
            try await OpenedStore.with(store) { opened in try await show(id, in: opened) }
        }

        func show(_ id: PipelineID, in opened: OpenedStore) async throws {
            let jobs = opened.store
            guard let details = try await jobs.pipelineDetails(id) else {
                if let job = try await jobs.job(JobID(high: id.high, low: id.low)) {
                    let step = job.pipeline.map { ", step \($0.step) of pipeline \($0.pipeline)" } ?? ""
                    throw CommandFailure("\(id) is a job, not a pipeline (\(job.name)\(step)); see `jobstore jobs show`")
                }
                throw CommandFailure("no pipeline \(id) in \(opened.location)")
            }
            if dot {
                print(dotGraph(details))
                return
            }
            var timelines: [JobTimeline] = []
            for job in details.jobs { timelines.append(try await jobs.events(of: job.id)) }
            if store.json {
                try printJSON(PipelineJSON(details, timelines: timelines))
            } else {
                print(describe(details, timelines: timelines))
            }
        }
    }
}

/// The step table (with each step's last run from its job's timeline) and the layered DAG of a
/// pipeline, as text.
func describe(_ details: PipelineDetails, timelines: [JobTimeline]) -> String {
    let pipeline = details.pipeline
    var lines = [
        "pipeline   \(pipeline.id)",
        "name       \(pipeline.name) (version \(pipeline.version))\(pipeline.failFast ? ", fail-fast" : "")",
        "state      \(pipeline.state): \(pipeline.succeededSteps) succeeded, \(pipeline.failedSteps) failed, \(pipeline.cancelledSteps) cancelled, \(pipeline.unfinishedSteps) unfinished of \(pipeline.stepCount)",
        "created    \(pipeline.createdAt) (\(Readable.relative(pipeline.createdAt)))",
        "finished   \(pipeline.finishedAt.map { "\($0) (\(Readable.relative($0)))" } ?? "-")",
        "",
    ]
    let dependencies = details.dependencies
    var table = Table("#", "step", "state", "job", "queue", "tries", "waits for", "queued", "ran")
    table.states = [2]
    let now = Timestamp.now
    for step in details.steps {
        let job = details.jobs[step.index]
        let run = Readable.lastRun(timelines[step.index].lastRun(now: now))
        table.add([
            "\(step.index)", step.name, job.state.description, job.id.description, job.queue, "\(job.attempts)/\(job.maxAttempts)",
            step.remainingDependencies == 0 ? "-" : "\(step.remainingDependencies) of \(dependencies[step.index].count)",
            run.queued, run.ran,
        ])
    }
    lines.append(table.render())
    lines.append("")
    lines.append("DAG, layer by layer (each step after the steps it depends on):")
    for (depth, layer) in details.layers.enumerated() {
        for (position, index) in layer.enumerated() {
            let state = details.jobs[index].state
            let label = "\(symbol(state)) \(details.steps[index].name) [\(state)]"
            let after = dependencies[index].map { details.steps[$0].name }
            let prefix = position == 0 ? "layer \(depth)".padding(toLength: 9, withPad: " ", startingAt: 0) : String(repeating: " ", count: 9)
            lines.append(prefix + (after.isEmpty ? label : label + "  ◀─ " + after.joined(separator: ", ")))
        }
    }
    return lines.joined(separator: "\n")
}

/// A one-character mark of a job state, for the DAG drawing.
func symbol(_ state: JobState) -> String {
    switch state {
    case .waiting: "…"
    case .pending: "○"
    case .running: "◐"
    case .succeeded: "✔"
    case .failed: "✘"
    case .cancelled: "⊘"
    }
}

/// The DAG in Graphviz's DOT language: one node per step (labelled with its state, coloured by
/// it), one edge per dependency.
func dotGraph(_ details: PipelineDetails) -> String {
    func escaped(_ text: String) -> String { text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
    func quoted(_ text: String) -> String { "\"" + escaped(text) + "\"" }
    let colors: [JobState: String] = [
        .waiting: "white", .pending: "lightyellow", .running: "lightblue", .succeeded: "palegreen", .failed: "salmon", .cancelled: "lightgray",
    ]
    var lines = [
        "digraph \(quoted("\(details.pipeline.name) v\(details.pipeline.version)")) {",
        "  rankdir=LR;",
        "  node [shape=box, style=filled];",
    ]
    for step in details.steps {
        let state = details.jobs[step.index].state
        lines.append("  s\(step.index) [label=\"\(escaped(step.name))\\n\(state)\", fillcolor=\(colors[state] ?? "white")];")
    }
    for step in details.steps {
        for dependent in step.dependents { lines.append("  s\(step.index) -> s\(dependent);") }
    }
    lines.append("}")
    return lines.joined(separator: "\n")
}
