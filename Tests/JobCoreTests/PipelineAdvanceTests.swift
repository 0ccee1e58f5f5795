import JobCore
import Testing

/// The pipeline advancement rule, planned by the core for both backends: what each move of a
/// step's job does, and the states it refuses (the conformance suite runs the same on both
/// stores; these pin the plan itself, case by case).
@Suite("Pipeline advancement, as the core plans it")
struct PipelineAdvanceTests {
    let now = Timestamp(microseconds: 1_800_000_000_000_000)
    let pipelineID = PipelineID(high: 0x0190_0000_0000_7000, low: 0x8000_0000_0000_0001)

    /// Step `index`'s job in `state`.
    func job(_ index: Int, _ state: JobState, runAt: Timestamp? = nil) -> Job {
        Job(
            id: JobID(high: 0x0190_0000_0000_7000, low: UInt64(100 + index)), name: "step-\(index)", queue: "ci", state: state, priority: 0,
            createdAt: now, updatedAt: now, runAt: runAt ?? now, maxAttempts: 3,
            lease: state == .running ? Lease(expiresAt: now, owner: OwnerToken(high: 1, low: 1)) : nil,
            pipeline: PipelineReference(pipeline: pipelineID, step: UInt16(index)), payload: [])
    }

    func step(_ index: Int, dependents: [Int], remaining: Int) -> PipelineStepRecord {
        PipelineStepRecord(index: index, name: "step-\(index)", jobID: job(index, .pending).id, dependents: dependents, remainingDependencies: remaining)
    }

    func pipeline(steps: Int, failFast: Bool = false, succeeded: Int = 0, failed: Int = 0, cancelled: Int = 0) -> Pipeline {
        Pipeline(
            id: pipelineID, name: "p", version: 1, failFast: failFast, state: .running, createdAt: now, updatedAt: now, finishedAt: nil,
            stepCount: steps, succeededSteps: succeeded, failedSteps: failed, cancelledSteps: cancelled)
    }

    @Test("a success lowers every dependent's count and releases those that reach 0 and wait, not before now")
    func success() throws {
        // 0 → 1 (only dependency), 0 → 2 (one of two), 0 → 3 (its job already cancelled by hand).
        let later = Timestamp(microseconds: now.microseconds + 5_000_000)
        let plan = try PipelineAdvance(
            moved: job(0, .succeeded), from: .running, step: step(0, dependents: [1, 2, 3], remaining: 0), pipeline: pipeline(steps: 4),
            dependents: [
                (step(1, dependents: [], remaining: 1), job(1, .waiting, runAt: later)),
                (step(2, dependents: [], remaining: 2), job(2, .waiting)),
                (step(3, dependents: [], remaining: 1), job(3, .cancelled)),
            ], everyStep: nil, at: now)
        #expect(plan.steps.map(\.remainingDependencies) == [0, 1, 0])
        #expect(plan.jobs.map(\.job.id) == [job(1, .waiting).id])
        #expect(plan.jobs.map(\.change) == [.release])
        var released = job(1, .waiting, runAt: later)
        PipelineAdvance.Change.release.apply(to: &released, at: now)
        #expect(released.state == .pending && released.runAt == later)
        #expect(plan.pipeline.succeededSteps == 1 && plan.pipeline.state == .running && plan.pipeline.updatedAt == now)
        // A success needs only the job of a dependent it may release; other moves need them all.
        #expect(PipelineAdvance.needsJob(of: step(1, dependents: [], remaining: 1), moved: job(0, .succeeded)))
        #expect(!PipelineAdvance.needsJob(of: step(2, dependents: [], remaining: 2), moved: job(0, .succeeded)))
        #expect(PipelineAdvance.needsJob(of: step(2, dependents: [], remaining: 2), moved: job(0, .failed)))
        #expect(PipelineAdvance.needsJob(of: step(2, dependents: [], remaining: 2), moved: job(0, .pending)))
        // The plan is the same when the jobs it does not need are not read.
        let unread = try PipelineAdvance(
            moved: job(0, .succeeded), from: .running, step: step(0, dependents: [1, 2], remaining: 0), pipeline: pipeline(steps: 3),
            dependents: [(step(1, dependents: [], remaining: 1), job(1, .waiting)), (step(2, dependents: [], remaining: 2), nil)],
            everyStep: nil, at: now)
        #expect(unread.jobs.map(\.job.id) == [job(1, .waiting).id] && unread.steps.map(\.remainingDependencies) == [0, 1])
    }

    @Test("a failure cancels the waiting dependents saying why; fail-fast cancels every other unfinished step once")
    func failFast() throws {
        let failed = job(0, .failed)
        #expect(PipelineAdvance.needsEveryStep(moved: failed, from: .running, in: pipeline(steps: 4, failFast: true)))
        #expect(!PipelineAdvance.needsEveryStep(moved: failed, from: .running, in: pipeline(steps: 4)))
        #expect(!PipelineAdvance.needsEveryStep(moved: job(0, .cancelled), from: .running, in: pipeline(steps: 4, failFast: true)))
        let plan = try PipelineAdvance(
            moved: failed, from: .running, step: step(0, dependents: [1], remaining: 0), pipeline: pipeline(steps: 4, failFast: true),
            dependents: [(step(1, dependents: [], remaining: 1), job(1, .waiting))],
            everyStep: [failed, job(1, .waiting), job(2, .running), job(3, .succeeded)], at: now)
        #expect(plan.jobs.map(\.job.id) == [job(1, .waiting).id, job(2, .running).id])
        #expect(plan.jobs[0].change == .cancel(reason: "cancelled: step 'step-0' (job \(failed.id)), which it depends on, failed"))
        #expect(plan.jobs[1].change == .cancel(reason: "cancelled: step 'step-0' (job \(failed.id)) failed and the pipeline is fail-fast"))
        #expect(plan.pipeline.failedSteps == 1)
        // Without fail-fast, only what depends on it.
        let plain = try PipelineAdvance(
            moved: failed, from: .running, step: step(0, dependents: [1], remaining: 0), pipeline: pipeline(steps: 4),
            dependents: [(step(1, dependents: [], remaining: 1), job(1, .waiting))], everyStep: nil, at: now)
        #expect(plain.jobs.map(\.job.id) == [job(1, .waiting).id] && plain.steps.isEmpty)
    }

    @Test("a retried step puts its cancelled and failed dependents back to waiting, and leaves the others")
    func retry() throws {
        let plan = try PipelineAdvance(
            moved: job(0, .pending), from: .failed, step: step(0, dependents: [1, 2, 3], remaining: 0),
            pipeline: pipeline(steps: 4, failed: 1, cancelled: 2),
            dependents: [
                (step(1, dependents: [], remaining: 1), job(1, .cancelled)), (step(2, dependents: [], remaining: 1), job(2, .failed)),
                (step(3, dependents: [], remaining: 0), job(3, .succeeded)),
            ], everyStep: nil, at: now)
        #expect(plan.jobs.map(\.job.id) == [job(1, .cancelled).id, job(2, .failed).id] && plan.jobs.allSatisfy { $0.change == .wait })
        #expect(plan.pipeline.failedSteps == 0 && plan.steps.isEmpty)
    }

    @Test("corrupt states are refused: a step record naming another job, a dependent with no remaining dependency")
    func corrupt() throws {
        let moved = job(0, .succeeded)
        let otherJob = PipelineStepRecord(index: 0, name: "step-0", jobID: job(9, .pending).id, dependents: [], remainingDependencies: 0)
        let mismatch = #expect(throws: JobStoreError.self) {
            try PipelineAdvance(moved: moved, from: .running, step: otherJob, pipeline: pipeline(steps: 2), dependents: [], everyStep: nil, at: now)
        }
        #expect(mismatch?.code == .corruptRecord && mismatch?.jobID == moved.id)
        let noneLeft = #expect(throws: JobStoreError.self) {
            try PipelineAdvance(
                moved: moved, from: .running, step: step(0, dependents: [1], remaining: 0), pipeline: pipeline(steps: 2),
                dependents: [(step(1, dependents: [], remaining: 0), job(1, .waiting))], everyStep: nil, at: now)
        }
        #expect(noneLeft?.code == .corruptRecord)
        #expect(noneLeft?.message == "step 1 of pipeline \(pipelineID) has no remaining dependency, yet step 0 just succeeded")
    }

    @Test("the worklist takes only moves between outcomes, starts one drain, and is empty after it")
    func worklist() {
        var list = StepWorklist()
        let sameOutcome = list.add(job(0, .running), from: .pending)  // unfinished to unfinished: nothing to advance
        let first = list.add(job(0, .succeeded), from: .running)  // the first: the caller drains
        let released = list.add(job(1, .pending), from: .waiting)
        let duringDrain = list.add(job(1, .cancelled), from: .waiting)  // queued only
        #expect(!sameOutcome && first && !released && !duringDrain)
        let popped = [list.pop(), list.pop(), list.pop()]
        #expect(popped.map { $0?.job.state } == [.succeeded, .cancelled, nil])
        let nextDrain = list.add(job(2, .failed), from: .running)
        list.abandon()
        let afterAbandon = list.pop()
        let again = list.add(job(2, .failed), from: .running)
        #expect(nextDrain && afterAbandon == nil && again)
    }
}
