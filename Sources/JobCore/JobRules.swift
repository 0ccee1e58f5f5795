import Instrumentation

/// What happens to a job at each step of its life, in one place, so that every backend of the
/// scheduler (this LMDB store, the PostgreSQL one) moves jobs the same way. Each rule changes a
/// ``Job`` value; the backend stores it, with its indexes and counters, in the same transaction.
extension Job {
    /// The job a ``NewJob`` describes, created at `now` (or at its chosen time) with `id` unless
    /// it chose one; the trace context it was made in is written into its headers with
    /// `instrument` (`nil`: the process's bootstrapped one; see ``JobTraceContext``).
    @inlinable public init(
        _ new: NewJob, id: JobID, now: Timestamp, state: JobState, pipeline: PipelineReference?, instrument: (any Instrument)? = nil
    ) {
        let createdAt = new.createdAt ?? now
        var headers = new.headers
        if new.traceContext.context != nil { JobTraceContext.capture(new, into: &headers, using: instrument) }
        self.init(
            id: new.id ?? id, name: new.name, queue: new.queue, tenant: new.tenant, state: state, priority: new.priority,
            createdAt: createdAt, updatedAt: createdAt, runAt: new.runAt ?? createdAt, attempts: 0,
            maxAttempts: max(1, new.maxAttempts), uniqueKey: new.uniqueKey, pipeline: pipeline,
            timeout: new.timeout.map { .microseconds($0.wholeMicroseconds) },
            headers: headers, payload: new.payload)
    }

    /// Checks every field against ``JobLimits`` and the state against the rest (a running job has
    /// a lease; only a pipeline step waits).
    ///
    /// - Throws: ``JobStoreError`` `.invalidField` naming the field and its limit.
    public func validate() throws { try JobLimits.validate(self) }

    /// Checks that `owner` still holds this running job's lease.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or claimed again meanwhile.
    public func requireLease(_ owner: OwnerToken) throws {
        guard state == .running, lease?.owner == owner else {
            throw JobStoreError(
                .leaseLost,
                "job \(id) is \(state)\(state == .running ? " under another lease" : ""); this worker's claim of it ended",
                jobID: id, hint: "The job was rescued, cancelled or claimed again; drop this run's outcome")
        }
    }

    /// This job changed through `body` at `now`, as every store changes one: the change must be
    /// legal (`checkChange(to:)`), and a job that is not running holds no lease. Not yet
    /// stored; a pipeline step's change is also checked against its step (``stepToCheck(_:)``).
    public func changed(at now: Timestamp, _ body: (inout Job) throws -> Void) throws -> Job {
        var new = self
        try body(&new)
        try checkChange(to: new)
        new.settle(at: now)
        return new
    }

    /// Checks that `new` is a legal change of `self`: same id, creation time and pipeline step,
    /// and a state move ``JobState/canMove(to:)`` allows.
    func checkChange(to new: Job) throws {
        guard new.id == id, new.createdAt == createdAt else {
            throw JobStoreError(.invalidField, "the id and creation time of job \(id) cannot change", jobID: id)
        }
        if new.state != state && !state.canMove(to: new.state) {
            throw JobStoreError.illegalTransition(id, from: state, to: new.state)
        }
        if new.pipeline != pipeline {
            throw JobStoreError(.invalidField, "the pipeline step of job \(id) cannot change", jobID: id)
        }
    }

    /// The pipeline step `new` (this job changed) is, if the change must be checked against
    /// its step: a step waits exactly while some dependency has not succeeded, so a move to
    /// waiting, or to pending from waiting or a finished state, needs the step's count.
    public func stepToCheck(_ new: Job) -> PipelineReference? {
        guard let reference = new.pipeline, new.state != state,
            new.state == .waiting || (new.state == .pending && (state == .waiting || state.isTerminal))
        else { return nil }
        return reference
    }

    /// Checks the change to `new` against its step (``stepToCheck(_:)``), named `step`, with
    /// `remaining` dependencies not yet succeeded: nothing may release it early, or make it
    /// wait for nothing.
    ///
    /// - Throws: `.illegalTransition` saying how many dependencies are left.
    public func checkStep(_ new: Job, step: String, remaining: Int) throws {
        guard (new.state == .waiting) != (remaining > 0), let reference = new.pipeline else { return }
        throw JobStoreError(
            .illegalTransition,
            "job \(id) is step '\(step)' of pipeline \(reference.pipeline), and \(remaining) of its dependencies have not succeeded: it cannot be \(new.state)",
            jobID: id, hint: new.state == .pending ? "It is released when its dependencies succeed; retry the pipeline to re-run failed ones" : nil)
    }

    /// Moved to `state` by hand (an operator's or a program's move, not a run's outcome) at
    /// `now`, with the side effects that state needs: to `running`, a claim (attempts + 1, a
    /// lease of `lease` for a new random owner); to `pending`, runnable now; leaving `running`,
    /// the lease is dropped (by ``changed(at:_:)``).
    ///
    /// - Throws: `.illegalTransition` for a move ``JobState/canMove(to:)`` forbids.
    public mutating func transition(to state: JobState, at now: Timestamp, lease: Duration) throws {
        guard self.state.canMove(to: state) else { throw JobStoreError.illegalTransition(id, from: self.state, to: state) }
        self.state = state
        switch state {
        case .running: claim(until: now.adding(lease), owner: .random())
        case .pending: runAt = now
        default: break
        }
    }

    /// Claimed: running, one more attempt, under a lease until `expiry` held by `owner`.
    public mutating func claim(until expiry: Timestamp, owner: OwnerToken) {
        state = .running
        attempts &+= 1
        lease = Lease(expiresAt: expiry, owner: owner)
    }

    /// Its lease extended to `expiry` — never shortened: an extension computed before a later
    /// one but written after it (a slow or stalled transaction) leaves the later expiry.
    public mutating func extendLease(until expiry: Timestamp) {
        if let current = lease?.expiresAt, current < expiry { lease?.expiresAt = expiry }
    }

    /// Its run succeeded with `result`.
    public mutating func succeed(result: [UInt8]?) {
        state = .succeeded
        self.result = result
    }

    /// Its run failed with `error` at `now`: pending again at `retryAt` while attempts remain (and
    /// `retryAt` is given), otherwise failed.
    public mutating func fail(_ error: String, at now: Timestamp, retryAt: Timestamp?) {
        errors.append(JobErrorRecord(message: error, attempt: attempts, at: now))
        if let retryAt, attempts < maxAttempts {
            state = .pending
            runAt = retryAt
        } else {
            state = .failed
        }
    }

    /// Given back unfinished (a snooze, or a release at shutdown): pending at `until`, the
    /// attempt not counted.
    public mutating func giveBack(until: Timestamp) {
        state = .pending
        runAt = until
        attempts = attempts > 0 ? attempts - 1 : 0
    }

    /// Cancelled; a finished job cannot be.
    ///
    /// - Throws: `.illegalTransition` for a succeeded, failed or cancelled job.
    public mutating func cancel() throws {
        guard !state.isTerminal else { throw JobStoreError.illegalTransition(id, from: state, to: .cancelled) }
        state = .cancelled
    }

    /// Its lease (which expired at `expiresAt`) was found lost at `now`: pending again while
    /// attempts remain, otherwise failed; an error says so either way.
    public mutating func rescue(at now: Timestamp, leaseExpiredAt expiresAt: Timestamp) {
        errors.append(JobErrorRecord(
            message: "lease expired at \(expiresAt) (the worker stopped or lost its lease)", attempt: attempts, at: now))
        if attempts < maxAttempts {
            state = .pending
            runAt = now
        } else {
            state = .failed
        }
    }

    /// Retried by hand at `now`: pending (or waiting, for a pipeline step with a dependency that
    /// has not succeeded: `blocked`), runnable now, one more attempt allowed.
    ///
    /// - Throws: `.illegalTransition` unless the job failed or was cancelled.
    public mutating func retry(at now: Timestamp, blocked: Bool) throws {
        guard state == .failed || state == .cancelled else { throw JobStoreError.illegalTransition(id, from: state, to: .pending) }
        state = blocked ? .waiting : .pending
        runAt = now
        maxAttempts = max(maxAttempts, attempts &+ 1)
    }

    /// Whether a requeue of this job is a retry (``retry(at:blocked:)``): it failed or was
    /// cancelled. Otherwise a requeue puts it back (``putBack(at:)``).
    public var requeueRetries: Bool { state == .failed || state == .cancelled }

    /// Put back in line by hand at `now` (requeue) when running or pending: pending and runnable
    /// now (a running job's worker then finds its lease lost).
    ///
    /// - Throws: `.illegalTransition` for a waiting, succeeded, failed or cancelled job (a
    ///   failed or cancelled one is retried instead: ``requeueRetries``).
    public mutating func putBack(at now: Timestamp) throws {
        guard state == .running || state == .pending else { throw JobStoreError.illegalTransition(id, from: state, to: .pending) }
        state = .pending
        runAt = now
    }

    /// Cancelled by its pipeline at `now` (a dependency failed or was cancelled, or a fail-fast
    /// pipeline failed), `reason` kept in its errors so an operator sees what cancelled it.
    public mutating func cancelForPipeline(at now: Timestamp, reason: String) {
        state = .cancelled
        errors.append(JobErrorRecord(message: reason, attempt: attempts, at: now))
    }

    /// Stored at `now` after a change: a job that is not running holds no lease.
    mutating func settle(at now: Timestamp) {
        if state != .running { lease = nil }
        updatedAt = now
    }
}

extension Job {
    /// Its errors as a store keeps them: the last ``JobLimits/maxErrors``, each message cut to
    /// ``JobLimits/maxErrorMessageBytes`` bytes (at a character boundary).
    public var storedErrors: [JobErrorRecord] { Job.storedErrors(errors) }

    /// `errors` as a store keeps them (see ``storedErrors``).
    public static func storedErrors(_ errors: [JobErrorRecord]) -> [JobErrorRecord] {
        errors.suffix(JobLimits.maxErrors).map { error in
            var kept = error
            kept.message = String(Substring(JobLimits.truncated(error.message, to: JobLimits.maxErrorMessageBytes)))
            return kept
        }
    }
}
