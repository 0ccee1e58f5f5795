/// A pipeline's identity: 16 bytes laid out like a ``JobID`` (time-ordered, from the same
/// generator, so no pipeline shares an id with a job). Printed and parsed as a UUID string.
public struct PipelineID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The first 8 bytes, big-endian (milliseconds, version, counter).
    public let high: UInt64
    /// The last 8 bytes, big-endian.
    public let low: UInt64

    /// An id from its two big-endian halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    package init(_ bits: JobID) { self.init(high: bits.high, low: bits.low) }

    /// Reads an id from 16 stored bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard let bits = JobID(bytes: bytes) else { return nil }
        self.init(bits)
    }

    /// Parses the UUID form (36 characters with dashes, or 32 hex digits).
    ///
    /// - Throws: ``JobStoreError`` `.invalidID` saying what is wrong with the text.
    public init(parsing text: String) throws {
        do {
            self.init(try JobID(parsing: text))
        } catch {
            throw JobStoreError(
                .invalidID, "'\(text)' is not a pipeline id",
                hint: "A pipeline id is a UUID such as 0190a5c4-1b2e-7000-8123-456789abcdef")
        }
    }

    /// The same 16 bytes as a ``JobID`` (the layout they share; for byte-level helpers).
    package var bits: JobID { JobID(high: high, low: low) }

    /// The UUID string, lowercase.
    public var description: String { bits.description }

    public static func < (a: PipelineID, b: PipelineID) -> Bool { a.bits < b.bits }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A stored pipeline: one run of a ``PipelineDefinition``, with its state rolled up from its
/// steps' jobs. The counts are kept in the record and changed in the transaction that changes
/// a step, so the state is O(1) to read and to keep.
public struct Pipeline: Sendable, Hashable, Identifiable {
    /// The pipeline's id (time-ordered).
    public var id: PipelineID
    /// The definition's name, e.g. "release".
    public var name: String
    /// The definition's version this run used.
    public var version: UInt32
    /// Whether a step failing for good cancels every other unfinished step.
    public var failFast: Bool
    /// The rolled-up state (see ``PipelineState/init(stepCount:succeeded:failed:cancelled:)``).
    public var state: PipelineState
    /// When it was enqueued.
    public var createdAt: Timestamp
    /// When its record last changed.
    public var updatedAt: Timestamp
    /// When it finished (its last step became terminal); `nil` while running.
    public var finishedAt: Timestamp?
    /// How many steps it has.
    public var stepCount: Int
    /// Steps whose job succeeded.
    public var succeededSteps: Int
    /// Steps whose job failed for good.
    public var failedSteps: Int
    /// Steps whose job was cancelled.
    public var cancelledSteps: Int

    /// Steps still waiting, pending or running.
    public var unfinishedSteps: Int { stepCount - succeededSteps - failedSteps - cancelledSteps }

    /// A pipeline with these fields (for backends and restores; a program enqueues a
    /// ``PipelineDefinition`` instead).
    public init(
        id: PipelineID, name: String, version: UInt32, failFast: Bool, state: PipelineState, createdAt: Timestamp,
        updatedAt: Timestamp, finishedAt: Timestamp?, stepCount: Int, succeededSteps: Int, failedSteps: Int, cancelledSteps: Int
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.failFast = failFast
        self.state = state
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
        self.stepCount = stepCount
        self.succeededSteps = succeededSteps
        self.failedSteps = failedSteps
        self.cancelledSteps = cancelledSteps
    }

    /// Counts a step's job in (`delta` +1) or out of (−1) the finished counts, by what its
    /// `state` means for the pipeline (waiting, pending and running count as unfinished).
    public mutating func count(_ state: JobState, _ delta: Int) {
        switch StepOutcome(state) {
        case .unfinished: break
        case .succeeded: succeededSteps += delta
        case .failed: failedSteps += delta
        case .cancelled: cancelledSteps += delta
        }
    }

    /// The state its counts call for.
    public var rolledUpState: PipelineState {
        PipelineState(stepCount: stepCount, succeeded: succeededSteps, failed: failedSteps, cancelled: cancelledSteps)
    }

    /// Stored at `now` after its counts changed: the state rolled up from them, and finishedAt
    /// set when it finishes (cleared when a retry reopens it).
    public mutating func settle(at now: Timestamp, previousState: PipelineState) {
        state = rolledUpState
        updatedAt = now
        if state != previousState { finishedAt = state.isTerminal ? now : nil }
    }
}

/// One step of a stored pipeline: its name, its job, and the steps that depend on it.
public struct PipelineStepRecord: Sendable, Hashable {
    /// The step's index in its pipeline (its position in the definition).
    public var index: Int
    /// The step's name.
    public var name: String
    /// The id of the job that runs the step.
    public var jobID: JobID
    /// The indexes of the steps that depend on this one (its out-edges), ascending.
    public var dependents: [Int]
    /// How many of the step's dependencies have not succeeded yet. The step's job leaves
    /// `waiting` when this reaches 0.
    public var remainingDependencies: Int

    /// A step record.
    public init(index: Int, name: String, jobID: JobID, dependents: [Int], remainingDependencies: Int) {
        self.index = index
        self.name = name
        self.jobID = jobID
        self.dependents = dependents
        self.remainingDependencies = remainingDependencies
    }
}

/// A pipeline with its steps and their jobs, read from one snapshot.
public struct PipelineDetails: Sendable, Hashable {
    /// The pipeline.
    public var pipeline: Pipeline
    /// Its steps, by index.
    public var steps: [PipelineStepRecord]
    /// Per step (by index), its job.
    public var jobs: [Job]

    /// A pipeline's details, read by a backend.
    public init(pipeline: Pipeline, steps: [PipelineStepRecord], jobs: [Job]) {
        self.pipeline = pipeline
        self.steps = steps
        self.jobs = jobs
    }

    /// Per step (by index), the indexes of the steps it depends on, ascending: derived from the
    /// stored out-edges in O(steps + edges).
    public var dependencies: [[Int]] {
        var result = [[Int]](repeating: [], count: steps.count)
        for step in steps {
            for dependent in step.dependents where dependent < result.count { result[dependent].append(step.index) }
        }
        return result
    }

    /// The steps in layers, for drawing the DAG: layer 0 holds the steps without dependencies,
    /// layer k the steps whose longest chain of dependencies has k steps; each layer in step
    /// order. O(steps + edges) (Kahn's algorithm over the stored out-edges).
    public var layers: [[Int]] {
        let dependencies = self.dependencies
        var remaining = dependencies.map(\.count)
        var depth = [Int](repeating: 0, count: steps.count)
        var queue = remaining.indices.filter { remaining[$0] == 0 }
        var next = 0
        while next < queue.count {
            let index = queue[next]
            next += 1
            for dependent in steps[index].dependents where dependent < steps.count {
                depth[dependent] = max(depth[dependent], depth[index] + 1)
                remaining[dependent] -= 1
                if remaining[dependent] == 0 { queue.append(dependent) }
            }
        }
        var layers = [[Int]](repeating: [], count: (depth.max() ?? -1) + 1)
        for index in queue { layers[depth[index]].append(index) }  // steps on a cycle (corrupt store) are left out
        return layers.map { $0.sorted() }
    }
}

extension Pipeline {
    /// Refuses a retry of a pipeline with no failed or cancelled step (nothing to run again).
    ///
    /// - Throws: `.illegalTransition`.
    package func requireRetryable() throws {
        guard failedSteps + cancelledSteps > 0 else {
            throw JobStoreError(.illegalTransition, "pipeline \(id) (\(state)) has no failed or cancelled step to retry")
        }
    }
}
