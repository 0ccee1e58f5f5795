/// One step of a pipeline definition: a name, the job it runs, and the steps it waits for.
public struct PipelineStep: Sendable, Hashable {
    /// The step's name, unique in its pipeline: 1…``PipelineLimits/maxStepNameBytes`` bytes of UTF-8.
    public var name: String
    /// The job the step runs: its name, queue, payload, priority, max attempts and any other field
    /// of a job. Its state is decided by the pipeline (pending or waiting).
    public var job: NewJob
    /// The names of the steps that must succeed before this one runs.
    public var dependsOn: [String]

    /// A step.
    public init(_ name: String, job: NewJob, dependsOn: [String] = []) {
        self.name = name
        self.job = job
        self.dependsOn = dependsOn
    }
}

/// A pipeline as a program defines it: a named, versioned DAG of steps.
///
/// ```swift
/// let release = PipelineDefinition(name: "release", version: 3, steps: [
///     PipelineStep("build", job: NewJob(name: "build")),
///     PipelineStep("test-linux", job: NewJob(name: "test", payload: Array("linux".utf8)), dependsOn: ["build"]),
///     PipelineStep("test-macos", job: NewJob(name: "test", payload: Array("macos".utf8)), dependsOn: ["build"]),
///     PipelineStep("package", job: NewJob(name: "package"), dependsOn: ["test-linux", "test-macos"]),
/// ])
/// let plan = try PipelinePlan(validating: release)  // O(steps + edges); nothing is written
/// ```
public struct PipelineDefinition: Sendable, Hashable {
    /// The pipeline's name, e.g. "release": 1…``PipelineLimits/maxNameBytes`` bytes of UTF-8.
    public var name: String
    /// The version of the definition (programs change pipelines over time; each run records
    /// the version it used).
    public var version: UInt32
    /// The steps, in any order; a step's index in this array is its index in the pipeline.
    public var steps: [PipelineStep]
    /// When a step fails for good, cancel every other step that has not finished (default:
    /// only the steps that depend on it are cancelled; independent ones run to their end).
    public var failFast: Bool

    /// A definition.
    public init(name: String, version: UInt32 = 1, steps: [PipelineStep], failFast: Bool = false) {
        self.name = name
        self.version = version
        self.steps = steps
        self.failFast = failFast
    }
}

/// The limits of a pipeline definition, checked before anything is written.
public enum PipelineLimits {
    /// The most steps in one pipeline.
    public static let maxSteps = 10_000
    /// Longest step name, in UTF-8 bytes.
    public static let maxStepNameBytes = 255
    /// Longest pipeline name, in UTF-8 bytes.
    public static let maxNameBytes = 255
}

/// A pipeline definition checked to be a DAG, with the indexes that advancing it needs: built in
/// O(steps + edges) — one pass to index the names, one topological sort (Kahn's algorithm).
public struct PipelinePlan: Sendable, Hashable {
    /// The definition, as given.
    public let definition: PipelineDefinition
    /// Per step (by index), the indexes of the steps it depends on.
    public let dependencies: [[Int]]
    /// Per step, the indexes of the steps that depend on it (its out-edges).
    public let dependents: [[Int]]
    /// Every step index in an order where each step comes after all of its dependencies.
    public let order: [Int]

    /// The steps with no dependency: they start pending; the others start waiting.
    public var roots: [Int] { dependencies.indices.filter { dependencies[$0].isEmpty } }

    /// Checks `definition` and indexes it.
    ///
    /// - Throws: `.invalidPipeline` naming the steps involved, for each of: no steps, too many
    ///   steps, an empty or too long name, a duplicate step name, an unknown dependency, a step
    ///   depending on itself, a dependency listed twice, and a cycle (the message lists the
    ///   steps of one cycle in the order they would have to run).
    public init(validating definition: PipelineDefinition) throws {
        func invalid(_ message: String, hint: String? = nil) -> JobStoreError {
            JobStoreError(.invalidPipeline, "pipeline '\(definition.name)': \(message)", hint: hint)
        }
        let steps = definition.steps
        let nameBytes = definition.name.utf8.count
        if nameBytes == 0 || nameBytes > PipelineLimits.maxNameBytes {
            throw invalid("the name is \(nameBytes) bytes; it must be 1…\(PipelineLimits.maxNameBytes) bytes of UTF-8")
        }
        if steps.isEmpty { throw invalid("it has no steps", hint: "A pipeline needs at least one step") }
        if steps.count > PipelineLimits.maxSteps {
            throw invalid(
                "it has \(steps.count) steps; the limit is \(PipelineLimits.maxSteps)",
                hint: "Split it into several pipelines")
        }

        // One pass: index the names.
        var index: [String: Int] = [:]
        index.reserveCapacity(steps.count)
        for (position, step) in steps.enumerated() {
            let bytes = step.name.utf8.count
            if bytes == 0 || bytes > PipelineLimits.maxStepNameBytes {
                throw invalid("step \(position) has a name of \(bytes) bytes; it must be 1…\(PipelineLimits.maxStepNameBytes) bytes of UTF-8")
            }
            if let first = index.updateValue(position, forKey: step.name) {
                throw invalid("steps \(first) and \(position) are both named '\(step.name)'", hint: "Step names must be unique")
            }
        }

        // Edges, in both directions.
        var dependencies = [[Int]](repeating: [], count: steps.count)
        var dependents = [[Int]](repeating: [], count: steps.count)
        for (position, step) in steps.enumerated() {
            var seen = Set<Int>()
            for name in step.dependsOn {
                guard let dependency = index[name] else {
                    throw invalid("step '\(step.name)' depends on '\(name)', which is not a step of the pipeline")
                }
                if dependency == position { throw invalid("step '\(step.name)' depends on itself") }
                if !seen.insert(dependency).inserted {
                    throw invalid("step '\(step.name)' lists its dependency '\(name)' twice")
                }
                dependencies[position].append(dependency)
                dependents[dependency].append(position)
            }
        }

        // Kahn: take steps whose dependencies are all taken.
        var remaining = dependencies.map(\.count)
        var order: [Int] = []
        order.reserveCapacity(steps.count)
        order += remaining.indices.filter { remaining[$0] == 0 }
        var next = 0
        while next < order.count {
            for dependent in dependents[order[next]] {
                remaining[dependent] -= 1
                if remaining[dependent] == 0 { order.append(dependent) }
            }
            next += 1
        }
        if order.count < steps.count {
            let cycle = PipelinePlan.cycle(remaining: remaining, dependencies: dependencies)
            let names = cycle.map { "'\(steps[$0].name)'" }
            throw invalid(
                "its steps form a cycle: \((names + [names[0]]).joined(separator: " → ")) (each must run after the one before it)",
                hint: "Remove one of these dependencies")
        }
        self.definition = definition
        self.dependencies = dependencies
        self.dependents = dependents
        self.order = order
    }

    /// One cycle among the steps Kahn's algorithm could not take, in run order. Each such step
    /// has a dependency that was not taken either, so following those dependencies from any of
    /// them must come back to a step already visited: O(steps).
    private static func cycle(remaining: [Int], dependencies: [[Int]]) -> [Int] {
        guard var current = remaining.indices.first(where: { remaining[$0] > 0 }) else { return [] }
        var visitedAt: [Int: Int] = [:]
        var path: [Int] = []
        while visitedAt[current] == nil {
            visitedAt[current] = path.count
            path.append(current)
            // A dependency that was not taken (its remaining count is above zero).
            guard let blocked = dependencies[current].first(where: { remaining[$0] > 0 }) else { return path }
            current = blocked
        }
        // The path walks from a step to what it waits for; the cycle runs the other way.
        return Array(path[(visitedAt[current] ?? 0)...].reversed())
    }
}

/// The state of a pipeline, rolled up from its steps' jobs.
public enum PipelineState: UInt8, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Some step has not finished (it is waiting, pending or running).
    case running = 0
    /// Every step succeeded.
    case succeeded = 1
    /// Every step finished and at least one failed for good (its dependents were cancelled).
    case failed = 2
    /// Every step finished, none failed, and at least one was cancelled.
    case cancelled = 3

    /// The lowercase name, as used in the admin tool and JSON.
    public var description: String {
        switch self {
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        }
    }

    /// Parses a lowercase name.
    public init?(name: String) {
        guard let state = PipelineState.allCases.first(where: { $0.description == name }) else { return nil }
        self = state
    }

    /// Whether the pipeline has finished.
    public var isTerminal: Bool { self != .running }

    /// The pipeline state for steps in these states (see ``init(stepCount:succeeded:failed:cancelled:)``).
    public init(rollingUp steps: some Sequence<JobState>) {
        var counts = (all: 0, succeeded: 0, failed: 0, cancelled: 0)
        for state in steps {
            counts.all += 1
            switch state {
            case .waiting, .pending, .running: break
            case .succeeded: counts.succeeded += 1
            case .failed: counts.failed += 1
            case .cancelled: counts.cancelled += 1
            }
        }
        self.init(stepCount: counts.all, succeeded: counts.succeeded, failed: counts.failed, cancelled: counts.cancelled)
    }

    /// The rule, in this one place: running while any step is unfinished (waiting, pending,
    /// running); then failed if any step failed, cancelled if any was cancelled, else succeeded.
    public init(stepCount: Int, succeeded: Int, failed: Int, cancelled: Int) {
        if succeeded + failed + cancelled < stepCount {
            self = .running
        } else {
            self = failed > 0 ? .failed : cancelled > 0 ? .cancelled : .succeeded
        }
    }
}

/// What a step's job state means for its pipeline: the four kinds the pipeline counts. A move
/// between two of them advances the pipeline.
public enum StepOutcome: Equatable, Sendable {
    /// Waiting, pending or running.
    case unfinished
    /// Succeeded: its dependents may run.
    case succeeded
    /// Failed for good: its dependents are cancelled.
    case failed
    /// Cancelled: its dependents are cancelled.
    case cancelled

    /// What `state` means for the pipeline.
    public init(_ state: JobState) {
        switch state {
        case .waiting, .pending, .running: self = .unfinished
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        }
    }
}

/// A pipeline as exported: what `JobTransaction/restorePipeline(_:)` needs to rebuild it
/// around its steps' jobs.
public struct PipelineExport: Sendable, Hashable, Codable {
    /// One step: its name, its job's id, and the indexes of the steps that depend on it.
    public struct Step: Sendable, Hashable, Codable {
        /// The step's name.
        public var name: String
        /// The id of the step's job (imported before the pipeline).
        public var job: JobID
        /// The indexes of the steps that depend on this one.
        public var dependents: [Int]

        /// A step.
        public init(name: String, job: JobID, dependents: [Int]) {
            self.name = name
            self.job = job
            self.dependents = dependents
        }
    }
    /// The pipeline's id.
    public var id: PipelineID
    /// The definition's name.
    public var name: String
    /// The definition's version.
    public var version: UInt32
    /// Whether a failure cancels every unfinished step.
    public var failFast: Bool
    /// When it was enqueued.
    public var createdAt: Timestamp
    /// When it finished; kept if the recounted state is finished too.
    public var finishedAt: Timestamp?
    /// Its steps, by index.
    public var steps: [Step]

    /// An exported pipeline.
    public init(
        id: PipelineID, name: String, version: UInt32, failFast: Bool, createdAt: Timestamp, finishedAt: Timestamp? = nil, steps: [Step]
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.failFast = failFast
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.steps = steps
    }

    /// The export of a pipeline read with `JobRepository/pipelineDetails(_:)`.
    public init(_ details: PipelineDetails) {
        let pipeline = details.pipeline
        self.init(
            id: pipeline.id, name: pipeline.name, version: pipeline.version, failFast: pipeline.failFast,
            createdAt: pipeline.createdAt, finishedAt: pipeline.finishedAt,
            steps: details.steps.map { Step(name: $0.name, job: $0.jobID, dependents: $0.dependents) })
    }
}
