import JobCore
import Locking

extension SchedulerEngine {
    /// The scheduler loop's state, and what each event does to it. The loop (``SchedulerEngine/loop()``)
    /// takes the events of its inbox one by one to the method of their kind, then starts what
    /// was claimed while handlers are free, and starts the next finish-and-claim transaction
    /// when none is being written. Used by the loop's task alone: no lock.
    struct Loop {
        let engine: SchedulerEngine
        /// The handlers running, by job.
        var running: [JobID: Running] = [:]
        /// Running handlers per queue.
        var perQueue: [String: Int] = [:]
        /// Claimed jobs not started yet (``SchedulerOptions/prefetch``), per queue in claim order.
        var buffered: [String: [(job: Job, owner: OwnerToken)]] = [:]
        var bufferedCount = 0
        /// Outcomes waiting for the next finish-and-claim transaction.
        var outcomes: [PendingOutcome] = []
        /// Whether a finish-and-claim transaction is being written. Meanwhile the loop goes on
        /// starting buffered jobs and gathering their outcomes for the next one, so with short
        /// jobs each commit carries many.
        var writing = false
        /// Whether writing waits after a failed transaction (until `.retry`).
        var paused = false
        /// The queues that may hold ready jobs: all after a wake-up, until a claim of the queue
        /// comes back short.
        var mayHaveWork: Set<String>
        /// Wake-ups so far: a claim that came back short clears a queue's "may have work" only if
        /// no wake-up came after the claim was started (else the wake-up would be lost).
        var wakes = 0
        var stopping = false
        /// The wake-up for the earliest delayed job the last claims saw.
        var timer: (at: Timestamp, task: Task<Void, Never>)?
        /// The shutdown deadline, then the wait after it.
        var deadline: Task<Void, Never>?
        var abandon: Task<Void, Never>?
        /// Which queue's claim and start go first (rotated, so none starves the others).
        var rotation = 0
        /// Failed transactions in a row (the pause before the next grows with them).
        var failures = 0

        init(engine: SchedulerEngine) {
            self.engine = engine
            mayHaveWork = Set(engine.queues)
        }

        /// Whether a stopping scheduler has nothing left: no handler, nothing buffered or unwritten.
        var isDone: Bool { stopping && running.isEmpty && bufferedCount == 0 && outcomes.isEmpty && !writing }

        /// Cancels the loop's timers (it ends).
        func cancelTimers() {
            timer?.task.cancel()
            deadline?.cancel()
            abandon?.cancel()
        }

        // MARK: One method per event

        /// A handler ended: its outcome waits for the next transaction (its lease stays held, and
        /// extended, until then), or nothing is written when its job was cancelled or lost.
        mutating func finished(_ id: JobID, _ end: HandlerEnd) {
            guard let run = running.removeValue(forKey: id) else { return }
            engine.busy.withLock { $0[id] = nil }
            run.timer?.cancel()
            perQueue[run.job.queue, default: 1] -= 1
            engine.metrics.record("job_duration", queue: run.job.queue, nanoseconds: nanoseconds(run.started.duration(to: .now)))
            if let kind = engine.outcome(of: run, end) {
                outcomes.append(PendingOutcome(outcome: JobOutcome(id: id, owner: run.owner, kind: kind), queue: run.job.queue))
            } else {
                engine.held.withLock { _ = $0.removeValue(forKey: id) }
            }
        }

        /// Work may have come (a signal of the store, or the timer of a delayed job `at`).
        mutating func woke(timer at: Timestamp? = nil) {
            if let at, timer?.at == at { timer = nil }
            mayHaveWork = Set(engine.queues)
            wakes += 1
        }

        /// A handler ran past its timeout: its task is cancelled; its attempt fails when it ends
        /// (``SchedulerEngine/outcome(of:_:)``). A watch checks it ended after the grace.
        mutating func timedOut(_ id: JobID, after timeout: Duration) {
            guard running[id] != nil, running[id]?.cancelReason == nil else { return }
            cancel(id, .timedOut(timeout))
            running[id]?.context.logger.notice("handler timed out; cancelling it", metadata: ["timeout": "\(timeout)"])
            let (engine, grace) = (engine, engine.options.timeoutGrace)
            Task {
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                engine.post(.overdue(id, timeout))
            }
        }

        /// A handler cancelled for its timeout a grace ago: if it is still running, it ignores
        /// cancellation — reported; its job stays held (never run twice at once) until it ends.
        func overdue(_ id: JobID, after timeout: Duration) {
            guard let run = running[id], case .timedOut = run.cancelReason else { return }
            engine.metrics.count("timeout_ignored", queue: run.job.queue)
            run.context.logger.error(
                "handler ignores cancellation: still running \(engine.options.timeoutGrace) after its \(timeout) timeout; its job is held until it returns",
                metadata: ["running_for": "\(run.started.duration(to: .now))"])
        }

        /// The lease of the job's claim by `owner` was lost: its run (started or buffered) stops —
        /// unless the job was claimed again since, under another owner (an extension that read
        /// the old claim before the finish-and-claim transaction wrote the new one).
        mutating func leaseLost(_ id: JobID, owner: OwnerToken) {
            let claim = running[id]?.owner ?? buffered.values.lazy.compactMap { $0.first { $0.job.id == id }?.owner }.first
            guard claim == owner else { return }
            cancel(id, .leaseLost)
        }

        /// Stops a job's handler (its job was cancelled, its lease lost, or the scheduler stops);
        /// a job claimed but not started is dropped (the store already ended or lost it).
        mutating func cancel(_ id: JobID, _ reason: CancelReason) {
            if let queue = buffered.first(where: { $0.value.contains { $0.job.id == id } })?.key {
                buffered[queue]?.removeAll { $0.job.id == id }
                bufferedCount -= 1
                engine.held.withLock { _ = $0.removeValue(forKey: id) }
                return
            }
            guard running[id] != nil, running[id]?.cancelReason == nil else { return }
            running[id]?.cancelReason = reason
            running[id]?.task.cancel()
        }

        /// A shutdown: graceful, handlers get the shutdown timeout to end before they are
        /// cancelled; otherwise (or a second, forced one) they are cancelled at once.
        mutating func stop(graceful: Bool) {
            if !stopping {
                stopping = true
                engine.logger.info("scheduler stopping", metadata: ["running": "\(running.count)", "graceful": "\(graceful)"])
                let (engine, timeout) = (engine, engine.options.shutdownTimeout)
                deadline = Task {
                    try? await Task.sleep(for: graceful ? timeout : .zero)
                    engine.post(.deadline)
                }
            } else if !graceful {
                deadline?.cancel()
                engine.post(.deadline)
            }
        }

        /// The shutdown deadline passed: every handler is cancelled, and the loop waits at most
        /// ``SchedulerEngine/giveUpAfter`` more for them and the last write.
        mutating func deadlinePassed() {
            for id in Array(running.keys) { cancel(id, .shutdown) }
            if abandon == nil {
                let (engine, grace) = (engine, engine.giveUpAfter)
                abandon = Task {
                    guard (try? await Task.sleep(for: grace)) != nil else { return }
                    engine.post(.abandon)
                }
            }
        }

        /// The wait after the deadline is over: a handler that ignores its cancellation, or a
        /// write the store never answers (a stalled connection pool). The loop stops anyway; the
        /// store keeps the jobs running under their leases, and a scheduler rescues them when
        /// the leases expire.
        func abandoned() {
            engine.logger.error("scheduler stopping without waiting any longer", metadata: [
                "handlers_still_running": "\(running.count)", "write_pending": "\(writing)", "unwritten_outcomes": "\(outcomes.count)",
            ])
        }

        /// A finish-and-claim transaction ended. Failed: its outcomes go back in line and writing
        /// pauses (longer after each failure in a row); a closed store ends the loop. Committed:
        /// the outcomes are counted, the claimed jobs buffered (a job without a handler fails),
        /// the queues whose claim came back short marked empty, the timer set for the earliest
        /// delayed job.
        mutating func committed(_ commit: Commit) throws {
            writing = false
            let response: FinishResponse
            switch commit.result {
            case .success(let value):
                response = value
                failures = 0
            case .failure(let error):
                outcomes = commit.outcomes + outcomes  // written by the next attempt
                failures += 1
                if let error = error as? JobStoreError, error.code == .closed {
                    engine.logger.error("the store closed under the scheduler", metadata: ["error": "\(error)"])
                    for id in Array(running.keys) { cancel(id, .shutdown) }
                    throw error
                }
                let pause = Duration.milliseconds(min(5000, 50 << min(failures, 7)))
                engine.logger.error("writing outcomes and claiming failed; retrying", metadata: ["error": "\(error)", "pause": "\(pause)"])
                paused = true
                let engine = engine
                Task {
                    try? await Task.sleep(for: pause)
                    engine.post(.retry)
                }
                return
            }
            engine.metrics.record("commit_duration", queue: "all", nanoseconds: nanoseconds(commit.started.duration(to: .now)))
            engine.logger.trace("finished and claimed", metadata: [
                "finished": "\(commit.outcomes.count)", "claimed": "\(response.claimed.count)", "filled": "\(response.filledQueues)",
                "next_run_at": "\(response.nextRunAt.map(String.init(describing:)) ?? "-")",
            ])
            engine.record(commit.outcomes, response.finished)
            engine.held.withLock { held in
                // Written: no longer this run's to extend (unless claimed again since, under another token).
                for pending in commit.outcomes where held[pending.outcome.id] == pending.outcome.owner {
                    held.removeValue(forKey: pending.outcome.id)
                }
            }
            let now = Timestamp.now
            for job in response.claimed {
                engine.metrics.count("claimed", queue: job.queue)
                engine.metrics.record("job_wait", queue: job.queue, nanoseconds: (now.microseconds - max(job.runAt, job.createdAt).microseconds) * 1000)
                guard engine.handler(job) != nil else {
                    outcomes.append(PendingOutcome(
                        outcome: JobOutcome(
                            id: job.id, owner: commit.owner,
                            kind: .failed(error: "no handler is registered for job '\(job.name)' in queue '\(job.queue)'", retryAt: nil)),
                        queue: job.queue))
                    engine.logger.error("no handler for a claimed job", metadata: ["job": "\(job.id)", "job_name": "\(job.name)", "queue": "\(job.queue)"])
                    continue
                }
                buffered[job.queue, default: []].append((job, commit.owner))
                bufferedCount += 1
            }
            for request in commit.requests where !response.filledQueues.contains(request.queue) && wakes == commit.wakes {
                mayHaveWork.remove(request.queue)
            }
            if let next = response.nextRunAt, timer.map({ next < $0.at }) ?? true {
                timer?.task.cancel()
                let engine = engine
                timer = (next, Task {
                    guard (try? await Task.sleep(for: next.delayFromNow)) != nil else { return }
                    engine.post(.timer(next))
                })
            }
        }

        // MARK: After the events

        /// A stopping scheduler gives back what was claimed but not started.
        mutating func giveBackBuffered() {
            guard stopping && bufferedCount > 0 else { return }
            for (queue, jobs) in buffered {
                for (job, owner) in jobs {
                    outcomes.append(PendingOutcome(outcome: JobOutcome(id: job.id, owner: owner, kind: .released), queue: queue))
                }
            }
            buffered = [:]
            bufferedCount = 0
        }

        /// Starts buffered jobs while handlers are free, overall and per queue.
        mutating func startBuffered() {
            let queues = engine.queues
            guard bufferedCount > 0, !queues.isEmpty else { return }
            for offset in queues.indices {
                let queue = queues[(rotation + offset) % queues.count]  // rotated, as claims are
                while running.count < engine.options.maxConcurrency, perQueue[queue, default: 0] < engine.limit(queue),
                    let (job, owner) = buffered[queue]?.first
                {
                    buffered[queue]?.removeFirst()
                    bufferedCount -= 1
                    guard let handler = engine.handler(job) else { continue }  // checked when claimed
                    running[job.id] = engine.start(job, owner: owner, handler: handler)
                    perQueue[queue, default: 0] += 1
                }
            }
        }

        /// Starts the next finish-and-claim transaction, beside the loop (which goes on starting
        /// buffered jobs meanwhile), when none is being written and there is something to write
        /// or room to claim. Returns whether it started one.
        mutating func writeNext() -> Bool {
            guard !writing && !paused else { return false }
            let requests =
                stopping
                ? []
                : engine.claimRequests(
                    mayHaveWork, running: running.count, perQueue: perQueue, buffered: buffered, bufferedCount: bufferedCount,
                    rotation: &rotation)
            guard !outcomes.isEmpty || !requests.isEmpty else { return false }
            let carried = outcomes
            outcomes = []
            writing = true
            let owner = OwnerToken.random()
            let wakesAtStart = wakes
            let engine = engine
            engine.logger.trace("finish-and-claim", metadata: ["outcomes": "\(carried.count)", "requests": "\(requests.map { "\($0.queue):\($0.limit)" })"])
            Task {
                let started = ContinuousClock.now
                let result: Result<FinishResponse, any Error>
                do {
                    let response = try await engine.backend.finish(carried.map(\.outcome), claiming: requests, lease: engine.options.lease, owner: owner)
                    // Held from the commit on, not from when the loop gets to them: their
                    // leases are extended, and spared by rescues, in between too.
                    engine.held.withLock { held in for job in response.claimed { held[job.id] = owner } }
                    result = .success(response)
                } catch {
                    result = .failure(error)
                }
                engine.post(.committed(Commit(
                    outcomes: carried, requests: requests, wakes: wakesAtStart, owner: owner, started: started, result: result)))
            }
            return true
        }
    }
}
