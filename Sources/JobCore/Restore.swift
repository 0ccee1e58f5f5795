// What an import puts back, the same on every backend: the items of an export, and the one
// rule that rebuilds a pipeline around its steps' jobs.

/// One item of an export, as an import puts it back (``AdministrableStore/restore(_:actor:dryRun:)``).
public enum RestoreItem: Sendable {
    /// A complete job in any state, with the timeline it had (its past events, before the
    /// `inserted` event the restore records). A pipeline step's job comes before its pipeline.
    case job(Job, JobTimeline?)
    /// A pipeline, rebuilt around its steps' jobs, which must be in the store.
    case pipeline(PipelineExport)
    /// A queue's controls: paused since a time, a rate limit (its bucket full).
    case queue(QueueControls)
    /// A periodic job's registration with its last tick (so a restored store does not run a
    /// tick again).
    case schedule(ScheduleRecord)

    /// The job's or pipeline's id, or the queue's or schedule's name, for messages.
    public var label: String {
        switch self {
        case .job(let job, _): job.id.description
        case .pipeline(let pipeline): pipeline.id.description
        case .queue(let queue): "queue \(queue.name)"
        case .schedule(let schedule): "schedule \(schedule.name)"
        }
    }
}

/// A queue's controls as an export carries them.
public struct QueueControls: Sendable, Hashable {
    /// The queue.
    public var name: String
    /// Paused since this time, or running.
    public var pausedAt: Timestamp?
    /// At most this many starts per period, or no limit.
    public var rateStarts: Int?
    /// The rate limit's period.
    public var ratePeriod: Duration?

    /// A queue's controls.
    public init(name: String, pausedAt: Timestamp?, rateStarts: Int?, ratePeriod: Duration?) {
        self.name = name
        self.pausedAt = pausedAt
        self.rateStarts = rateStarts
        self.ratePeriod = ratePeriod
    }
}

extension PipelineExport {
    /// Rebuilds the pipeline around its steps' jobs as the store has them (`jobs[i]`: step i's
    /// job, `nil` when it is not in the store): the definition validated as at enqueue (names,
    /// limits, no cycle); the counts, the rolled-up state and each step's remaining
    /// dependencies recounted from the jobs' states, so nothing in the export can make them
    /// disagree. Each backend stores what this returns.
    ///
    /// - Throws: `.invalidPipeline` for a structure that is not a valid DAG; `.invalidField` for
    ///   a step whose job is missing or is not that step, or a step waiting when none of its
    ///   dependencies is unfinished (or the reverse).
    package func rebuilt(around jobs: [Job?], at now: Timestamp) throws -> (Pipeline, [PipelineStepRecord]) {
        var dependsOn = [[String]](repeating: [], count: steps.count)
        for (index, step) in steps.enumerated() {
            for dependent in step.dependents {
                guard steps.indices.contains(dependent) else {
                    throw JobStoreError(.invalidPipeline, "pipeline \(id): step '\(step.name)' lists step \(dependent) as a dependent, which does not exist")
                }
                dependsOn[dependent].append(steps[index].name)
            }
        }
        let plan = try PipelinePlan(validating: PipelineDefinition(
            name: name, version: version,
            steps: steps.enumerated().map { PipelineStep($0.element.name, job: NewJob(name: "-"), dependsOn: dependsOn[$0.offset]) },
            failFast: failFast))
        var states: [JobState] = []
        for (index, step) in steps.enumerated() {
            guard let job = jobs.indices.contains(index) ? jobs[index] : nil else {
                throw JobStoreError(
                    .invalidField, "step '\(step.name)' of pipeline \(id) runs job \(step.job), which is not in the store",
                    hint: "Import the jobs before their pipelines (export writes them first)")
            }
            guard job.id == step.job, job.pipeline == PipelineReference(pipeline: id, step: UInt16(index)) else {
                throw JobStoreError(.invalidField, "job \(step.job) is not step \(index) of pipeline \(id)", jobID: step.job)
            }
            states.append(job.state)
        }
        var pipeline = Pipeline(
            id: id, name: name, version: version, failFast: failFast, state: .running,
            createdAt: createdAt, updatedAt: now, finishedAt: nil, stepCount: steps.count,
            succeededSteps: 0, failedSteps: 0, cancelledSteps: 0)
        for state in states { pipeline.count(state, +1) }
        pipeline.state = pipeline.rolledUpState
        pipeline.finishedAt = pipeline.state.isTerminal ? finishedAt ?? now : nil
        var records: [PipelineStepRecord] = []
        for (index, step) in steps.enumerated() {
            let remaining = plan.dependencies[index].filter { states[$0] != .succeeded }.count
            if (states[index] == .waiting) == (remaining == 0) && !(states[index].isTerminal && states[index] != .succeeded) {
                throw JobStoreError(
                    .invalidField,
                    "step '\(step.name)' of pipeline \(id) is \(states[index]) with \(remaining) of its dependencies not succeeded",
                    jobID: step.job, hint: "A step waits exactly while some dependency has not succeeded")
            }
            records.append(PipelineStepRecord(
                index: index, name: step.name, jobID: step.job, dependents: step.dependents.sorted(), remainingDependencies: remaining))
        }
        return (pipeline, records)
    }
}
