import Foundation
import JobStore

/// A pipeline as JSON: the form of `pipelines show --json`, `pipelines list --json`, and the
/// pipeline lines of `export`/`import` (`"kind": "pipeline"`). Times are microseconds since the
/// epoch, each with an ISO 8601 copy beside it (`…_iso`, not read by import). On import the counts, state and remaining dependencies are recounted from the jobs.
package struct PipelineJSON: Codable {
    package struct StepJSON: Codable {
        package var index: Int
        package var name: String
        package var job: String
        package var state: String?
        package var dependsOn: [Int]?
        package var dependents: [Int]
        package var remainingDependencies: Int?
        /// `pipelines show --json` only: the step's last run from its job's timeline (µs).
        package var queuedMicroseconds: Int64?
        package var ranMicroseconds: Int64?

        enum CodingKeys: String, CodingKey {
            case index, name, job, state, dependents
            case dependsOn = "depends_on", remainingDependencies = "remaining_dependencies"
            case queuedMicroseconds = "queued_us", ranMicroseconds = "ran_us"
        }
    }

    package var kind = "pipeline"
    package var id: String
    package var name: String
    package var version: UInt32
    package var failFast: Bool
    package var state: String?
    package var createdAt: Int64
    package var updatedAt: Int64?
    package var finishedAt: Int64?
    package var createdAtISO, updatedAtISO, finishedAtISO: String?
    package var stepCount: Int?
    package var succeededSteps, failedSteps, cancelledSteps: Int?
    package var steps: [StepJSON]?

    enum CodingKeys: String, CodingKey {
        case kind, id, name, version, state, steps
        case failFast = "fail_fast", createdAt = "created_at", updatedAt = "updated_at", finishedAt = "finished_at"
        case createdAtISO = "created_at_iso", updatedAtISO = "updated_at_iso", finishedAtISO = "finished_at_iso"
        case stepCount = "step_count", succeededSteps = "succeeded_steps", failedSteps = "failed_steps", cancelledSteps = "cancelled_steps"
    }

    /// A pipeline's record (its steps left out, as in listings).
    package init(_ pipeline: Pipeline) {
        id = pipeline.id.description
        name = pipeline.name
        version = pipeline.version
        failFast = pipeline.failFast
        state = pipeline.state.description
        createdAt = pipeline.createdAt.microseconds
        updatedAt = pipeline.updatedAt.microseconds
        finishedAt = pipeline.finishedAt?.microseconds
        createdAtISO = pipeline.createdAt.iso
        updatedAtISO = pipeline.updatedAt.iso
        finishedAtISO = pipeline.finishedAt?.iso
        stepCount = pipeline.stepCount
        succeededSteps = pipeline.succeededSteps
        failedSteps = pipeline.failedSteps
        cancelledSteps = pipeline.cancelledSteps
    }

    /// A pipeline with its steps; with their jobs' timelines, each step's last run.
    package init(_ details: PipelineDetails, timelines: [JobTimeline]? = nil) {
        self.init(details.pipeline)
        let dependencies = details.dependencies
        let now = Timestamp.now
        steps = details.steps.map { step in
            let run = timelines?[step.index].lastRun(now: now)
            return StepJSON(
                index: step.index, name: step.name, job: step.jobID.description, state: details.jobs[step.index].state.description,
                dependsOn: dependencies[step.index], dependents: step.dependents, remainingDependencies: step.remainingDependencies,
                queuedMicroseconds: run?.queued.map(\.microseconds), ranMicroseconds: run.map(\.ran.microseconds))
        }
    }

    /// What `import` restores; throws a message naming the bad field.
    package func export() throws -> PipelineExport {
        guard let steps else { throw LineError("pipeline \(id) has no 'steps'") }
        return PipelineExport(
            id: try PipelineID(parsing: id), name: name, version: version, failFast: failFast,
            createdAt: Timestamp(microseconds: createdAt), finishedAt: finishedAt.map(Timestamp.init(microseconds:)),
            steps: try steps.map { PipelineExport.Step(name: $0.name, job: try JobID(parsing: $0.job), dependents: $0.dependents) })
    }
}
