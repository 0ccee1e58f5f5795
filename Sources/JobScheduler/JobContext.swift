import JobCore
import Logging
import Locking
import Synchronization

/// A job handler: runs one job. Return to succeed; throw to fail the attempt (it is retried
/// with backoff while attempts remain, and its error kept); or ask the context to retry at a
/// time, snooze, or discard the job. Task cancellation means the job was cancelled, its lease
/// lost, or the scheduler is stopping: stop soon (its outcome is then decided by why).
public typealias JobHandler = @Sendable (JobContext) async throws -> Void

/// What a handler gets: the job, its attempt, a logger, and ways to decide the outcome.
public final class JobContext: Sendable {
    /// The job, as claimed (running, under this run's lease).
    public let job: Job
    /// A logger with the job's id, name, queue and attempt as metadata.
    public let logger: Logger

    /// Which attempt this is: 1 for the first run.
    public var attempt: Int { Int(job.attempts) }

    enum Request: Sendable {
        case retry(at: Timestamp, reason: String)
        case snooze(until: Timestamp)
        case discard(reason: String)
    }
    private let state = Lock<(request: Request?, result: [UInt8]?)>((nil, nil))
    /// Reads a pipeline with its steps' jobs from the store (for ``dependencyResults()``).
    private let pipeline: @Sendable (PipelineID) async throws -> PipelineDetails?

    /// Where ``reportProgress(_:_:)`` hands a report (the scheduler's coalescing buffer).
    private let report: @Sendable (ProgressReport) -> Void

    init(
        job: Job, logger: Logger, pipeline: @escaping @Sendable (PipelineID) async throws -> PipelineDetails? = { _ in nil },
        report: @escaping @Sendable (ProgressReport) -> Void = { _ in }
    ) {
        self.job = job
        self.pipeline = pipeline
        self.report = report
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        logger[metadataKey: "job_name"] = "\(job.name)"
        logger[metadataKey: "queue"] = "\(job.queue)"
        logger[metadataKey: "attempt"] = "\(job.attempts)"
        self.logger = logger
    }

    /// Ends this attempt as failed and runs the job again at `time` (if attempts remain),
    /// recording `reason` as the attempt's error. Return after calling it.
    public func retry(at time: Timestamp, reason: String = "retry requested by the handler") {
        state.withLock { $0.request = .retry(at: time, reason: reason) }
    }

    /// Runs the job again after `delay` without counting this attempt (e.g. a rate limit was
    /// hit). Return after calling it.
    public func snooze(for delay: Duration) {
        state.withLock { $0.request = .snooze(until: Timestamp.now.adding(delay)) }
    }

    /// Fails the job for good, whatever attempts remain, with `reason` as its error. Return
    /// after calling it.
    public func discard(reason: String) {
        state.withLock { $0.request = .discard(reason: reason) }
    }

    /// Reports how far the job has come: `fraction` of it done (0 … 1, clamped) and, if given,
    /// what it is doing (at most `JobCore/JobProgress/maxMessageBytes` bytes). Cheap to call
    /// often: reports are coalesced — the scheduler writes each job's last one every
    /// `SchedulerOptions.progressInterval`, all jobs' in one transaction, apart from the job's
    /// record. Programs read it with the store's `progress(of:)` (and, on LMDB, the change
    /// feed), operators with `jobstore jobs show` and the dashboard's job page.
    public func reportProgress(_ fraction: Double, _ message: String? = nil) {
        report(ProgressReport(id: job.id, progress: JobProgress(fraction: fraction, message: message, attempt: job.attempts, at: .now)))
    }

    /// Reports `completed` of `total` units done (see ``reportProgress(_:_:)``).
    public func reportProgress(completed: Int, of total: Int, _ message: String? = nil) {
        reportProgress(total > 0 ? Double(completed) / Double(total) : 0, message)
    }

    /// Stores `result` with the job when it succeeds (at most `JobCore/JobLimits/maxResultBytes`).
    public func setResult(_ result: [UInt8]) {
        state.withLock { $0.result = result }
    }

    /// Stores `value`, coded by `coder` (JSON by default), as the job's result when it
    /// succeeds: what the steps that depend on this one read (``result(of:as:coder:)``).
    ///
    /// - Throws: `.invalidField` when the value does not encode.
    public func setResult<T: Encodable>(_ value: T, coder: any JobPayloadCoder = JSONPayloadCoder()) throws {
        setResult(try coder.encodeResult(value, of: job))
    }

    /// The results of the steps this pipeline step depends on, by step name (a dependency that
    /// stored no result is absent); empty for a job that is no pipeline step. Read from the
    /// store when asked, so a retried step reads them as they are now.
    public func dependencyResults() async throws -> [String: [UInt8]] {
        guard let (details, _, dependencies) = try await dependencies() else { return [:] }
        var results: [String: [UInt8]] = [:]
        for dependency in dependencies {
            if let result = details.jobs[dependency].result { results[details.steps[dependency].name] = result }
        }
        return results
    }

    /// The result of dependency step `step`, decoded as `type` with `coder` (JSON by default,
    /// as ``setResult(_:coder:)-(T,_)`` stores it); `nil` when that step stored none.
    ///
    /// - Throws: `.invalidArgument` when this job is no pipeline step or `step` is not one of
    ///   its dependencies; `.undecodablePayload` when the result does not decode as `type`.
    public func result<T: Decodable>(of step: String, as type: T.Type, coder: any JobPayloadCoder = JSONPayloadCoder()) async throws -> T? {
        guard let (details, index, dependencies) = try await dependencies(), let reference = job.pipeline else {
            throw JobStoreError(.invalidArgument, "job \(job.id) is not a pipeline step; it has no dependencies to read results from", jobID: job.id)
        }
        guard let dependency = dependencies.first(where: { details.steps[$0].name == step }) else {
            let names = dependencies.map { "'\(details.steps[$0].name)'" }.joined(separator: ", ")
            throw JobStoreError(
                .invalidArgument,
                "step '\(step)' is not a dependency of step '\(details.steps[index].name)' of pipeline \(reference.pipeline) (its dependencies: \(names.isEmpty ? "none" : names))",
                jobID: job.id)
        }
        return try details.jobs[dependency].result(as: type, coder: coder)
    }

    /// This step's pipeline as the store has it now, the step's index, and the indexes of the
    /// steps it depends on (each with its job); `nil` for a job that is no pipeline step.
    private func dependencies() async throws -> (PipelineDetails, Int, [Int])? {
        guard let reference = job.pipeline, let details = try await pipeline(reference.pipeline) else { return nil }
        let index = Int(reference.step)
        guard details.steps.indices.contains(index) else { return nil }
        return (details, index, details.dependencies[index].filter { details.jobs.indices.contains($0) })
    }

    var requested: (request: Request?, result: [UInt8]?) { state.withLock { $0 } }
}
