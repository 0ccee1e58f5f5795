/// What one step's move does to its pipeline: the rule of pipeline advancement, planned once for
/// every backend. A backend reads what the plan needs (the step, the pipeline, the dependents'
/// step records and jobs, and every step's job for a fail-fast failure), builds the plan, and
/// applies it in the transaction that moved the step: ``steps`` first (their remaining counts,
/// which the checks of a step's release read), then ``jobs`` (each change through the backend's
/// own update, so a cascade queues its steps in the ``StepWorklist``), then ``pipeline``.
///
/// The moves of a step's job between the ``StepOutcome``s:
/// - to **succeeded**: each dependent's remaining-dependency count drops by one; a dependent
///   whose count reaches 0 and whose job waits is released (pending, not before now);
/// - from unfinished to **failed** or **cancelled**: each waiting dependent is cancelled, saying
///   why (its own dependents follow through the worklist); a failure in a fail-fast pipeline
///   cancels every unfinished step;
/// - from failed or cancelled back to **unfinished** (a retry): each dependent that was
///   cancelled or failed waits again.
///
/// A stored state that the rule cannot explain (a step record naming another job, a dependent
/// with no remaining dependency when one of its dependencies succeeds) is refused as
/// `.corruptRecord`, the same on every backend.
package struct PipelineAdvance {
    /// What the plan does to one other step's job.
    package enum Change: Equatable, Sendable {
        /// Its dependencies have all succeeded: pending, not before now.
        case release
        /// It can never run: cancelled, with `reason` added to its errors.
        case cancel(reason: String)
        /// What cancelled it was retried: waiting again.
        case wait

        /// Applies the change to `job` (the backend's update then stamps and checks it).
        package func apply(to job: inout Job, at now: Timestamp) {
            switch self {
            case .release:
                job.state = .pending
                job.runAt = max(job.runAt, now)
            case .cancel(let reason):
                job.cancelForPipeline(at: now, reason: reason)
            case .wait:
                job.state = .waiting
            }
        }
    }

    /// The pipeline with the step counted in its new outcome, its state rolled up.
    package var pipeline: Pipeline
    /// The dependents' step records whose remaining count changed, to write first.
    package var steps: [PipelineStepRecord] = []
    /// The other steps' jobs to change, in order.
    package var jobs: [(job: Job, change: Change)] = []

    /// Whether the plan for `job`'s move from `old` needs every step's job (a failure in a
    /// fail-fast pipeline cancels them all).
    package static func needsEveryStep(moved job: Job, from old: JobState, in pipeline: Pipeline) -> Bool {
        job.state == .failed && pipeline.failFast && StepOutcome(old) == .unfinished
    }

    /// Whether the plan for `job`'s move from `old` needs the job of the dependent whose step
    /// record is `dependent`: a success releases only a dependent whose last remaining
    /// dependency it was, so a fan-in of n steps reads its join's job once, not n times; the
    /// other moves look at every dependent's job.
    package static func needsJob(of dependent: PipelineStepRecord, moved job: Job) -> Bool {
        StepOutcome(job.state) != .succeeded || dependent.remainingDependencies == 1
    }

    /// Plans what step `step`'s job, `job`, moving from `old`, does to `pipeline`.
    ///
    /// - Parameters:
    ///   - dependents: for each of `step.dependents`, in order, its step record and its job
    ///     (`nil` if the job is gone, or not read because ``needsJob(of:moved:)`` said so).
    ///   - everyStep: every step's job when ``needsEveryStep(moved:from:in:)`` says so.
    /// - Throws: `.corruptRecord` for a state the rule cannot explain.
    package init(
        moved job: Job, from old: JobState, step: PipelineStepRecord, pipeline: Pipeline,
        dependents: [(step: PipelineStepRecord, job: Job?)], everyStep: [Job]?, at now: Timestamp
    ) throws {
        let reference = job.pipeline
        guard step.jobID == job.id, let reference, reference.pipeline == pipeline.id, Int(reference.step) == step.index else {
            throw JobStoreError(
                .corruptRecord,
                "job \(job.id) says it is step \(reference.map { "\($0.step) of pipeline \($0.pipeline)" } ?? "of no pipeline"), whose step \(step.index) runs job \(step.jobID)",
                jobID: job.id, hint: "Run `jobstore verify`")
        }
        var counted = pipeline
        counted.count(old, -1)
        counted.count(job.state, +1)
        counted.settle(at: now, previousState: pipeline.state)
        self.pipeline = counted

        switch (StepOutcome(old), StepOutcome(job.state)) {
        case (_, .succeeded):
            for (dependent, dependentJob) in dependents {
                guard dependent.remainingDependencies > 0 else {
                    throw JobStoreError(
                        .corruptRecord,
                        "step \(dependent.index) of pipeline \(pipeline.id) has no remaining dependency, yet step \(step.index) just succeeded",
                        hint: "Run `jobstore verify`")
                }
                var lowered = dependent
                lowered.remainingDependencies -= 1
                steps.append(lowered)
                if lowered.remainingDependencies == 0, let waiting = dependentJob, waiting.state == .waiting {
                    jobs.append((waiting, .release))
                }
            }
        case (.unfinished, .failed), (.unfinished, .cancelled):
            let reason = "cancelled: step '\(step.name)' (job \(job.id)), which it depends on, \(job.state == .failed ? "failed" : "was cancelled")"
            var cancelled = Set<JobID>()
            for case (_, let dependentJob?) in dependents where dependentJob.state == .waiting {
                jobs.append((dependentJob, .cancel(reason: reason)))
                cancelled.insert(dependentJob.id)
            }
            if let everyStep, job.state == .failed && pipeline.failFast {
                let reason = "cancelled: step '\(step.name)' (job \(job.id)) failed and the pipeline is fail-fast"
                for other in everyStep where !other.state.isTerminal && other.id != job.id && !cancelled.contains(other.id) {
                    jobs.append((other, .cancel(reason: reason)))
                }
            }
        case (.failed, .unfinished), (.cancelled, .unfinished):
            for case (_, let dependentJob?) in dependents where dependentJob.state == .cancelled || dependentJob.state == .failed {
                jobs.append((dependentJob, .wait))
            }
        default:
            break
        }
    }
}

/// The pipeline steps whose job changed outcome in a transaction, to be advanced one after the
/// other: a worklist, so a cascade through a 10,000-step chain is a loop, not a recursion. A
/// step's advancement changes other steps through the backend's update, which adds them here;
/// the outermost update drains the list.
package struct StepWorklist {
    private var items: [(from: JobState, job: Job)] = []
    private var next = 0
    private var draining = false

    /// An empty list.
    package init() {}

    /// Adds `job`, which moved from `old`, when its move changed its ``StepOutcome``; returns
    /// whether the caller is to drain the list with ``pop()`` (it was added and no drain was
    /// under way: one starts).
    package mutating func add(_ job: Job, from old: JobState) -> Bool {
        guard job.pipeline != nil && StepOutcome(old) != StepOutcome(job.state) else { return false }
        items.append((old, job))
        if draining { return false }
        draining = true
        return true
    }

    /// The next step to advance, or `nil` at the end of the drain (the list is then empty).
    package mutating func pop() -> (from: JobState, job: Job)? {
        guard next < items.count else {
            items.removeAll(keepingCapacity: true)
            next = 0
            draining = false
            return nil
        }
        next += 1
        return items[next - 1]
    }

    /// Ends a drain that stopped early (an error: the transaction is abandoned).
    package mutating func abandon() {
        items.removeAll(keepingCapacity: true)
        next = 0
        draining = false
    }
}
