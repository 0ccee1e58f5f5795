import Foundation
import Testing
import TestSupport

@testable import JobStore

/// A step whose job runs on a queue of its own name (so a test claims exactly that step).
func step(_ name: String, _ dependsOn: [String] = [], maxAttempts: UInt16 = 1) -> PipelineStep {
    PipelineStep(name, job: NewJob(name: name, queue: name, maxAttempts: maxAttempts), dependsOn: dependsOn)
}

/// Claims the one ready job of step `name` and completes or fails it.
@discardableResult
func run(_ store: JobRepository, _ name: String, succeed: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws -> Job {
    let owner = OwnerToken.random()
    let claimed = try store.claim(queue: name, lease: .seconds(60), owner: owner)
    let job = try #require(claimed.first, "step \(name) is not ready", sourceLocation: sourceLocation)
    return succeed ? try store.complete(job.id, owner: owner) : try store.fail(job.id, owner: owner, error: "boom", retryAt: nil)
}

/// Step name → its job's state.
func stepStates(_ store: JobRepository, _ id: PipelineID) throws -> [String: JobState] {
    let details = try #require(try store.pipelineDetails(id))
    return Dictionary(uniqueKeysWithValues: zip(details.steps.map(\.name), details.jobs.map(\.state)))
}

@Suite("Pipelines: enqueue, advance, cascade, cancel, retry, verify")
struct PipelineTests {
    @Test("a diamond: roots pending, the rest waiting; a step is released when its last dependency succeeds")
    func diamond() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "release", version: 3, steps: [
                step("build"), step("test-a", ["build"]), step("test-b", ["build"]), step("package", ["test-a", "test-b"]),
            ]))
            #expect(pipeline.state == .running && pipeline.version == 3 && pipeline.stepCount == 4)
            #expect(try stepStates(store, pipeline.id) == ["build": .pending, "test-a": .waiting, "test-b": .waiting, "package": .waiting])
            #expect(try store.count(.waiting) == 3)
            #expect(try store.claim(queue: "package", lease: .seconds(1), owner: .random()).isEmpty)  // waiting is not claimable
            let details = try #require(try store.pipelineDetails(pipeline.id))
            #expect(details.dependencies == [[], [0], [0], [1, 2]])
            #expect(details.jobs.allSatisfy { $0.pipeline?.pipeline == pipeline.id })
            try expectConsistent(store)

            try run(store, "build")
            #expect(try stepStates(store, pipeline.id) == ["build": .succeeded, "test-a": .pending, "test-b": .pending, "package": .waiting])
            try run(store, "test-a")
            #expect(try stepStates(store, pipeline.id)["package"] == .waiting)  // test-b still due
            try expectConsistent(store)
            try run(store, "test-b")
            #expect(try stepStates(store, pipeline.id)["package"] == .pending)
            try run(store, "package")
            let done = try #require(try store.pipeline(pipeline.id))
            #expect(done.state == .succeeded && done.finishedAt != nil && done.succeededSteps == 4)
            #expect(try store.pipelineCounts() == [.running: 0, .succeeded: 1, .failed: 0, .cancelled: 0])
            try expectConsistent(store)
        }
    }

    @Test("10,000 steps, as a chain and as a fan-out/fan-in, enqueue in one transaction and run to the end", arguments: ["chain", "fan"])
    func tenThousandSteps(shape: String) throws {
        try withStore { store in
            let n = PipelineLimits.maxSteps
            let steps = (0..<n).map { index -> PipelineStep in
                let dependsOn: [String] = switch (shape, index) {
                case (_, 0): []
                case ("chain", _): ["s\(index - 1)"]
                case (_, n - 1): (1..<n - 1).map { "s\($0)" }
                default: ["s0"]
                }
                return PipelineStep("s\(index)", job: NewJob(name: "work", queue: "q", maxAttempts: 1), dependsOn: dependsOn)
            }
            let pipeline = try store.enqueue(PipelineDefinition(name: shape, steps: steps))
            #expect(try store.count(.pending) == 1)
            #expect(try store.count(.waiting) == n - 1)
            try expectConsistent(store)
            let owner = OwnerToken.random()
            var ran = 0
            try store.write { txn in
                while let job = try txn.claim(queue: "q", limit: 1, lease: .seconds(60), owner: owner).first {
                    try txn.complete(job.id, owner: owner)
                    ran += 1
                }
            }
            #expect(ran == n)
            #expect(try store.pipeline(pipeline.id)?.state == .succeeded)
            try expectConsistent(store)
        }
    }

    @Test("a step failing for good cancels what depends on it, transitively; independent steps run on; the pipeline ends failed")
    func failureCascade() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [
                step("a"), step("b", ["a"]), step("c", ["b"]), step("d"), step("e", ["d", "c"]),
            ]))
            try run(store, "a", succeed: false)
            #expect(try stepStates(store, pipeline.id) == ["a": .failed, "b": .cancelled, "c": .cancelled, "d": .pending, "e": .cancelled])
            #expect(try store.pipeline(pipeline.id)?.state == .running)  // d still runs
            let c = try #require(try store.pipelineDetails(pipeline.id)).jobs[2]
            #expect(c.errors.last?.message.hasPrefix("cancelled: step 'b'") == true)  // says why
            try expectConsistent(store)
            try run(store, "d")
            let failed = try #require(try store.pipeline(pipeline.id))
            #expect(failed.state == .failed && failed.failedSteps == 1 && failed.cancelledSteps == 3 && failed.finishedAt != nil)
            try expectConsistent(store)

            // Retry: the failed step and what it cancelled re-run; d's success is kept.
            let retried = try store.retryPipeline(pipeline.id)
            #expect(retried.state == .running && retried.finishedAt == nil)
            #expect(try stepStates(store, pipeline.id) == ["a": .pending, "b": .waiting, "c": .waiting, "d": .succeeded, "e": .waiting])
            try expectConsistent(store)
            for name in ["a", "b", "c", "e"] { try run(store, name) }
            #expect(try store.pipeline(pipeline.id)?.state == .succeeded)
            #expect(try store.pipelineCounts()[.succeeded] == 1)
            #expect(try store.pipelineCounts()[.failed] == 0)
            try expectConsistent(store)
        }
    }

    @Test("a retry that fails again (attempts left) keeps the dependents waiting; failFast cancels every unfinished step")
    func retriesAndFailFast() throws {
        try withStore { store in
            let patient = try store.enqueue(PipelineDefinition(name: "patient", steps: [step("a1", maxAttempts: 2), step("b1", ["a1"])]))
            let owner = OwnerToken.random()
            let claimed = try #require(try store.claim(queue: "a1", lease: .seconds(60), owner: owner).first)
            try store.fail(claimed.id, owner: owner, error: "flaky", retryAt: .now)  // back to pending: not a failure of the step
            #expect(try stepStates(store, patient.id) == ["a1": .pending, "b1": .waiting])

            let fast = try store.enqueue(PipelineDefinition(
                name: "fast", steps: [step("x"), step("y"), step("z", ["y"])], failFast: true))
            let ownerY = OwnerToken.random()
            let y = try #require(try store.claim(queue: "y", lease: .seconds(60), owner: ownerY).first)
            try run(store, "x", succeed: false)
            #expect(try stepStates(store, fast.id) == ["x": .failed, "y": .cancelled, "z": .cancelled])
            #expect(try store.pipeline(fast.id)?.state == .failed)
            expectCode(.leaseLost) { try store.complete(y.id, owner: ownerY) }  // y's worker is told its run ended
            try expectConsistent(store)
        }
    }

    @Test("cancelling a pipeline cancels its waiting, pending and running steps; a finished one cannot be cancelled")
    func cancelPipeline() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a"), step("b"), step("c", ["a", "b"])]))
            try run(store, "a")
            let owner = OwnerToken.random()
            let b = try #require(try store.claim(queue: "b", lease: .seconds(60), owner: owner).first)
            let cancelled = try store.cancelPipeline(pipeline.id)
            #expect(cancelled.state == .cancelled && cancelled.succeededSteps == 1 && cancelled.cancelledSteps == 2)
            #expect(try stepStates(store, pipeline.id) == ["a": .succeeded, "b": .cancelled, "c": .cancelled])
            expectCode(.leaseLost) { try store.complete(b.id, owner: owner) }
            expectCode(.illegalTransition) { try store.cancelPipeline(pipeline.id) }
            expectCode(.notFound) { try store.cancelPipeline(PipelineID(high: 1, low: 2)) }
            try expectConsistent(store)
        }
    }

    @Test("retrying one cancelled step whose dependency has not succeeded makes it wait, not run")
    func retryOneStep() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a"), step("b", ["a"]), step("c", ["b"])]))
            try run(store, "a", succeed: false)
            let details = try #require(try store.pipelineDetails(pipeline.id))
            try store.retry(details.jobs[1].id)  // b: a has not succeeded
            #expect(try stepStates(store, pipeline.id) == ["a": .failed, "b": .waiting, "c": .waiting])
            #expect(try store.pipeline(pipeline.id)?.state == .running)
            try store.retry(details.jobs[0].id)
            try run(store, "a")
            try run(store, "b")
            try run(store, "c")
            #expect(try store.pipeline(pipeline.id)?.state == .succeeded)
            try expectConsistent(store)
        }
    }

    @Test("a waiting step cannot be released by hand, a step cannot change pipeline, and nothing is written when refused")
    func stepsMoveOnlyWithTheirDependencies() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a"), step("b", ["a"])]))
            let details = try #require(try store.pipelineDetails(pipeline.id))
            let (a, b) = (details.jobs[0], details.jobs[1])
            expectCode(.illegalTransition) { try store.transition(b.id, to: .pending) }
            expectCode(.illegalTransition) { try store.requeue(b.id) }
            expectCode(.invalidField) { try store.update(b.id) { $0.pipeline = nil } }
            expectCode(.invalidField) { try store.update(a.id) { $0.pipeline = PipelineReference(pipeline: pipeline.id, step: 1) } }
            try store.cancel(b.id)
            try store.retry(b.id)  // a has not succeeded: b waits again
            #expect(try stepStates(store, pipeline.id) == ["a": .pending, "b": .waiting])
            try store.update(b.id) { $0.priority = 9 }  // other fields change as for any job
            try expectConsistent(store)
        }
    }

    @Test("each invalid definition is its own error and writes nothing")
    func invalidDefinitionsWriteNothing() throws {
        try withStore { store in
            let invalid: [PipelineDefinition] = [
                PipelineDefinition(name: "empty", steps: []),
                PipelineDefinition(name: "dup", steps: [step("a"), step("a")]),
                PipelineDefinition(name: "unknown", steps: [step("a", ["nope"])]),
                PipelineDefinition(name: "self", steps: [step("a", ["a"])]),
                PipelineDefinition(name: "cycle", steps: [step("a", ["c"]), step("b", ["a"]), step("c", ["b"])]),
                PipelineDefinition(name: "big", steps: (0...PipelineLimits.maxSteps).map { step("s\($0)") }),
            ]
            for definition in invalid {
                expectCode(.invalidPipeline) { try store.enqueue(definition) }
            }
            // A step's job field out of its limits is refused too, after validation, in the transaction.
            let badJob = PipelineDefinition(name: "bad", steps: [step("a"), PipelineStep("b", job: NewJob(name: ""), dependsOn: ["a"])])
            expectCode(.invalidField) { try store.enqueue(badJob) }
            #expect(try store.counts().values.reduce(0, +) == 0)
            #expect(try store.pipelines().pipelines.isEmpty)
            #expect(try store.pipelineCounts().values.reduce(0, +) == 0)
            try expectConsistent(store)
        }
    }

    @Test("a step's job is deleted only with its pipeline; prune leaves steps to pipeline pruning")
    func deleteAndPrune() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a"), step("b", ["a"])]))
            try run(store, "a")
            try run(store, "b")
            let plain = try store.insert(NewJob(name: "plain"))
            try store.transition(plain.id, to: .cancelled)
            let details = try #require(try store.pipelineDetails(pipeline.id))
            expectCode(.invalidArgument) { try store.delete(details.jobs[0].id) }
            #expect(try store.prune(state: .succeeded, createdBefore: .now.adding(.seconds(1)), batchSize: 1) == 0)
            #expect(try store.prune(state: .cancelled, createdBefore: .now.adding(.seconds(1))) == 1)
            #expect(try store.prunePipelines(state: .succeeded, createdBefore: .now.adding(.seconds(1)), batchSize: 1) == 1)
            #expect(try store.pipeline(pipeline.id) == nil)
            #expect(try store.counts().values.reduce(0, +) == 0)
            #expect(try store.deletePipeline(pipeline.id) == false)
            try expectConsistent(store)
        }
    }

    @Test("pruning by finish time: jobs by when they finished (idx.finished), pipelines by their finishedAt")
    func pruneByFinishTime() throws {
        try withStore { store in
            // Created long ago, finished now: created-time pruning takes them, finish-time pruning does not yet.
            let old = Timestamp.now.adding(.seconds(-86_400))
            let early = try store.insert(NewJob(name: "early", createdAt: old))
            try store.transition(early.id, to: .cancelled)
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a")]))
            try run(store, "a")
            let finishedAt = try #require(try store.pipeline(pipeline.id)?.finishedAt)
            #expect(try store.count(.cancelled, finishedBefore: old) == 0)
            #expect(try store.count(.cancelled, finishedBefore: .now.adding(.seconds(1))) == 1)
            #expect(try store.prune(state: .cancelled, finishedBefore: old) == 0)
            #expect(try store.countPipelines(.succeeded, finishedBefore: finishedAt) == 0)
            #expect(try store.countPipelines(.succeeded, finishedBefore: finishedAt.adding(.microseconds(1))) == 1)
            #expect(try store.prunePipelines(state: .succeeded, finishedBefore: finishedAt) == 0)
            try expectConsistent(store)
            #expect(try store.prune(state: .cancelled, finishedBefore: .now.adding(.seconds(1))) == 1)
            #expect(try store.prunePipelines(state: .succeeded, finishedBefore: .now.adding(.seconds(1))) == 1)
            #expect(try store.counts().values.reduce(0, +) == 0)
            // A retried job leaves idx.finished, and comes back with its new finish time.
            let again = try store.insert(NewJob(name: "again"))
            try store.cancel(again.id)
            try store.retry(again.id)
            #expect(try store.count(.cancelled, finishedBefore: .now.adding(.seconds(1))) == 0)
            try expectConsistent(store)
        }
    }

    @Test("pipelines by state, oldest or newest first, paged; all pipelines in id order")
    func listing() throws {
        try withStore { store in
            var ids: [PipelineID] = []
            for n in 0..<7 { ids.append(try store.enqueue(PipelineDefinition(name: "p\(n)", steps: [step("s\(n)")])).id) }
            try store.cancelPipeline(ids[1])
            var seen: [PipelineID] = []
            var cursor: PipelineCursor?
            repeat {
                let page = try store.pipelines(in: .running, limit: 2, after: cursor)
                seen += page.pipelines.map(\.id)
                cursor = page.next
            } while cursor != nil
            #expect(seen == ids.filter { $0 != ids[1] })
            #expect(try store.pipelines(in: .running, order: .newestFirst, limit: 2).pipelines.map(\.id) == [ids[6], ids[5]])
            #expect(try store.pipelines(in: .cancelled).pipelines.map(\.id) == [ids[1]])
            let all = try store.pipelines(limit: 4)
            #expect(all.pipelines.map(\.id) == Array(ids.prefix(4)))
            #expect(try store.pipelines(limit: 4, after: all.next).pipelines.map(\.id) == Array(ids.suffix(3)))
            #expect(try PipelineCursor(parsing: cursorText(all.next)) == all.next)
            #expect(try store.pipelineCounts() == [.running: 6, .succeeded: 0, .failed: 0, .cancelled: 1])
            expectCode(.invalidID) { try PipelineID(parsing: "nope") }
        }
    }

    func cursorText(_ cursor: PipelineCursor?) -> String { cursor.map(\.description) ?? "" }

    @Test("verify() finds a pipeline out of step with its jobs")
    func verifyFindsPipelineDamage() throws {
        try withStore { store in
            let pipeline = try store.enqueue(PipelineDefinition(name: "p", steps: [step("a"), step("b", ["a"])]))
            let details = try #require(try store.pipelineDetails(pipeline.id))
            // Damage: move b to pending behind the pipeline's back (its dependency has not succeeded).
            try store.write { txn in
                let b = try txn.existing(details.jobs[1].id)
                var moved = b
                moved.state = .pending
                try txn.replace(b, with: moved, recording: .changed)
            }
            let problems = try store.verify()
            #expect(problems.contains { $0.kind == .badPipeline && $0.pipelineID == pipeline.id && $0.message.contains("pending with 1") })
            // Damage: a step record's remaining count.
            try store.write { txn in
                var record = try txn.step(pipeline.id, 1)
                record.remainingDependencies = 0
                try txn.txn.put(try txn.db.pipelines().steps, Keys.step(pipeline.id, 1), PipelineFormat.encode(record))
            }
            #expect(try store.verify().contains { $0.message.contains("counts 0 remaining dependencies, a recount finds 1") })
        }
    }
}
