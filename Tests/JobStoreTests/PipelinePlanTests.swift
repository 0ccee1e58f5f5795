import Testing

@testable import JobStore

@Suite("Pipeline definitions: validation in O(steps + edges)")
struct PipelinePlanTests {
    func step(_ name: String, _ dependsOn: String...) -> PipelineStep {
        PipelineStep(name, job: NewJob(name: name), dependsOn: dependsOn)
    }

    func definition(_ steps: PipelineStep...) -> PipelineDefinition {
        PipelineDefinition(name: "release", version: 3, steps: steps)
    }

    /// Expects validation to fail with `.invalidPipeline` and a message containing every fragment.
    func expectInvalid(_ definition: PipelineDefinition, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try PipelinePlan(validating: definition)
            Issue.record("validation accepted it", sourceLocation: sourceLocation)
        } catch let error as JobStoreError {
            #expect(error.code == .invalidPipeline, sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(error.description.contains(fragment), "\(error.description) lacks \(fragment)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    /// Every step comes after each of its dependencies in `order`.
    func expectTopological(_ plan: PipelinePlan, sourceLocation: SourceLocation = #_sourceLocation) {
        var position = [Int](repeating: -1, count: plan.dependencies.count)
        for (at, step) in plan.order.enumerated() { position[step] = at }
        #expect(!position.contains(-1), sourceLocation: sourceLocation)
        for (step, dependencies) in plan.dependencies.enumerated() {
            for dependency in dependencies { #expect(position[dependency] < position[step], sourceLocation: sourceLocation) }
        }
    }

    @Test("a diamond, a fan-out/fan-in and a chain: edges both ways, roots, a topological order")
    func shapes() throws {
        let diamond = try PipelinePlan(validating: definition(step("d", "b", "c"), step("b", "a"), step("c", "a"), step("a")))
        #expect(diamond.roots == [3])
        #expect(diamond.dependencies == [[1, 2], [3], [3], []])
        #expect(diamond.dependents == [[], [0], [0], [1, 2]])
        #expect(diamond.order.first == 3 && diamond.order.last == 0)
        expectTopological(diamond)

        let fan = try PipelinePlan(validating: definition(
            step("build"), step("test-1", "build"), step("test-2", "build"), step("test-3", "build"),
            step("package", "test-1", "test-2", "test-3"), step("deploy", "package")))
        #expect(fan.roots == [0])
        #expect(fan.dependents[0] == [1, 2, 3])
        expectTopological(fan)
    }

    @Test("each invalid definition is its own error naming the steps involved")
    func invalidDefinitions() {
        expectInvalid(PipelineDefinition(name: "release", steps: []), "no steps")
        expectInvalid(PipelineDefinition(name: "", steps: [step("a")]), "name is 0 bytes")
        expectInvalid(definition(step("a"), step("b"), step("a")), "steps 0 and 2", "'a'")
        expectInvalid(definition(step("a"), step("b", "nope")), "'b' depends on 'nope'", "not a step")
        expectInvalid(definition(step("a", "a")), "'a' depends on itself")
        expectInvalid(definition(step("a"), step("b", "a", "a")), "'b' lists its dependency 'a' twice")
        expectInvalid(definition(step("")), "step 0 has a name of 0 bytes")
        // A cycle, listed in run order (from any of its steps), behind a step that is fine and
        // before one that waits on it.
        let cyclic = definition(step("start"), step("x", "start", "z"), step("y", "x"), step("z", "y"), step("after", "z"))
        expectInvalid(cyclic, "cycle")
        let message = cycleError(cyclic)
        #expect(["'x' → 'y' → 'z' → 'x'", "'y' → 'z' → 'x' → 'y'", "'z' → 'x' → 'y' → 'z'"].contains { message.contains($0) }, "\(message)")
        let tooMany = PipelineDefinition(name: "big", steps: (0...PipelineLimits.maxSteps).map { step("s\($0)") })
        expectInvalid(tooMany, "10001 steps", "limit is 10000")
    }

    @Test("10,000 steps: a chain and a wide fan-out/fan-in validate")
    func largest() throws {
        let count = PipelineLimits.maxSteps
        let chain = try PipelinePlan(validating: PipelineDefinition(
            name: "chain", steps: (0..<count).map { $0 == 0 ? step("s0") : step("s\($0)", "s\($0 - 1)") }))
        #expect(chain.order == Array(0..<count))
        let wide = try PipelinePlan(validating: PipelineDefinition(name: "wide", steps:
            [step("start")] + (1..<count - 1).map { step("s\($0)", "start") } + [step("end", (1..<count - 1).map { "s\($0)" })]))
        #expect(wide.dependents[0].count == count - 2)
        #expect(wide.dependencies[count - 1].count == count - 2)
        expectTopological(wide)
    }
}

extension PipelinePlanTests {
    func cycleError(_ definition: PipelineDefinition) -> String {
        do {
            _ = try PipelinePlan(validating: definition)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func step(_ name: String, _ dependsOn: [String]) -> PipelineStep {
        PipelineStep(name, job: NewJob(name: name), dependsOn: dependsOn)
    }
}

@Suite("Pipeline state: rolled up from the steps")
struct PipelineStateTests {
    @Test("running while any step is unfinished; then failed over cancelled over succeeded")
    func rollUp() {
        #expect(PipelineState(rollingUp: [.succeeded, .waiting, .failed]) == .running)
        #expect(PipelineState(rollingUp: [.pending]) == .running)
        #expect(PipelineState(rollingUp: [.succeeded, .running]) == .running)
        #expect(PipelineState(rollingUp: [.succeeded, .succeeded]) == .succeeded)
        #expect(PipelineState(rollingUp: [.succeeded, .failed, .cancelled]) == .failed)
        #expect(PipelineState(rollingUp: [.cancelled, .succeeded]) == .cancelled)
        for state in PipelineState.allCases { #expect(PipelineState(name: state.description) == state) }
        #expect(PipelineState(name: "done") == nil)
        #expect(!PipelineState.running.isTerminal && PipelineState.failed.isTerminal)
    }
}
