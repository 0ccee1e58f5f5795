import CLMDB
import DequeModule

#if canImport(Glibc)
import Glibc
#endif

extension Environment {
    /// Runs `body` in a write transaction on the environment's writer thread and returns when
    /// the transaction has committed (and, with ``Durability/full``, is on disk).
    ///
    /// Requests queued while the writer is busy are committed together in one transaction
    /// (group commit: one flush for many callers). A request that throws rolls back alone — its
    /// changes are discarded, the others commit — and its error is rethrown here.
    ///
    /// The calling task suspends; no thread of Swift's cooperative pool waits on LMDB's lock.
    ///
    /// - Important: `body` may run more than once (a batch re-run after the map grew, or after
    ///   another request of the batch failed). It must not have effects outside the transaction
    ///   that cannot be repeated. Requests of one batch see each other's changes in queue order.
    /// - Important: Never wait (block a thread, or await) for an async write from inside a
    ///   write closure of the same environment: the writer cannot begin its transaction until
    ///   the enclosing one ends, so both wait forever. The layer cannot detect this deadlock.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> T) async throws -> T {
        let writer = try writer()
        // A checked continuation: ThreadSanitizer sees its hand-over from the writer thread to the
        // awaiting task (an unsafe one, resumed from a long-lived thread, is reported as a race
        // even in a control that shares nothing else — docs/RELIABILITY.md).
        return try await withCheckedThrowingContinuation { continuation in
            let request = WriteRequest(body: body, continuation: continuation)
            writer.submit(request)
        }
    }
}

/// One queued async write: its body and what it produced.
final class WriteRequest: @unchecked Sendable {
    // @unchecked Sendable: created by the caller, then touched only by the writer thread until
    // `complete()` hands the result to the continuation.
    private let runBody: (WriteTransaction) throws -> Void
    private let finish: (Error?) -> Void
    /// The error this request threw in the last run, if it did.
    var failure: Error?

    init<T: Sendable>(body: @escaping @Sendable (WriteTransaction) throws -> T, continuation: CheckedContinuation<T, Error>) {
        let box = ResultBox<T>()
        runBody = { txn in box.value = try body(txn) }
        finish = { error in
            if let error {
                continuation.resume(throwing: error)
            } else if let value = box.value {
                continuation.resume(returning: value)
            } else {
                continuation.resume(throwing: LMDBError(
                    code: .transactionEnded, operation: "write", message: "the request was never run"))
            }
        }
    }

    func run(_ txn: WriteTransaction) throws { try runBody(txn) }
    func complete(_ error: Error?) { finish(error ?? failure) }
}

/// Where a request's body leaves its value until the commit. `@unchecked Sendable`: written
/// by the writer thread, read after the commit on the same thread.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}

/// Counters of the writer thread.
public struct WriterStatistics: Sendable, Hashable, Codable {
    /// Async write requests completed (committed or failed).
    public var requests = 0
    /// Transactions committed for them.
    public var commits = 0
    /// The largest number of requests in one commit.
    public var largestBatch = 0
    /// Batches aborted and run again without a request that threw (``WriteIsolation/rerunWithoutFailed``).
    public var reruns = 0
    /// Requests per commit, on average.
    public var averageBatch: Double { commits == 0 ? 0 : Double(requests) / Double(commits) }
}

/// The environment's writer thread: it begins and commits every async write transaction on
/// one OS thread, committing the requests queued meanwhile together.
///
/// Each batch goes through ``Environment/withWriteAttempts(_:)``, the same retry loop as
/// synchronous writes (map growth included), so there is one path to disk.
final class Writer: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is guarded by `lock`, except `environment`
    // (a weak reference, itself thread-safe) and the thread identity, set once before start.
    private let lock = ConditionLock()
    private var queue: Deque<WriteRequest> = []
    private var stopping = false
    private var stopped = false
    private var arrivedSinceCompletion = 0
    private var stats = WriterStatistics()
    private weak var environment: Environment?
    private let options: WriterOptions
    private var thread = pthread_t()
    /// What a commit costs lately: the maximum of recent `mdb_txn_commit` durations, decaying by
    /// 1/8 per commit, so one empty (flush-free) commit does not make a durable store look cheap.
    /// Writer thread only.
    private var commitCostNanoseconds: UInt64 = 0

    init(environment: Environment, options: WriterOptions) {
        self.environment = environment
        self.options = options
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let writer = Unmanaged<Writer>.fromOpaque(context).takeRetainedValue()
            writer.run()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<Writer>.fromOpaque(context).release()
            stopped = true
        } else {
            pthread_detach(thread)
        }
    }

    var statistics: WriterStatistics { lock.withLock { stats } }

    /// Queues a request; fails it at once if the writer has stopped.
    func submit(_ request: WriteRequest) {
        lock.lock()
        if stopping || stopped {
            lock.unlock()
            request.complete(LMDBError(code: .closed, operation: "write", message: "the environment is closed"))
            return
        }
        queue.append(request)
        arrivedSinceCompletion += 1
        lock.signal()
        lock.unlock()
    }

    /// Stops after committing what is queued; waits for that unless called on the writer thread.
    func stop() {
        lock.lock()
        stopping = true
        lock.broadcast()
        if pthread_equal(pthread_self(), thread) == 0 {
            while !stopped { lock.wait() }
        }
        lock.unlock()
    }

    private func run() {
        var lastBatch = 0
        var lastBatchNanoseconds: UInt64 = 0
        let expensiveCommitNanoseconds = nanoseconds(options.expensiveCommit)
        let cohortNanoseconds = nanoseconds(options.cohortWait)
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if queue.isEmpty {
                stopped = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let take: Int
            if commitCostNanoseconds >= expensiveCommitNanoseconds {
                // Commits flush: every request that shares one saves a flush. Let the callers
                // woken by the last commit join this batch, rather than leaving them for the
                // next one (the two alternating half-batches of naive group commit).
                if cohortNanoseconds > 0 && lastBatch > 1 && !stopping {
                    let deadline = monotonicNanoseconds() + min(cohortNanoseconds, lastBatchNanoseconds / 2)
                    while arrivedSinceCompletion < lastBatch && queue.count < options.maxBatchSize && !stopping {
                        if !lock.wait(untilNanoseconds: deadline) { break }
                    }
                }
                take = min(queue.count, options.maxBatchSize)
            } else {
                // Commits are cheap: take half of the queue, so that callers resubmit while this
                // batch runs and the writer never drains the queue and sleeps (lock-step).
                take = min(options.maxBatchSize, max(1, (queue.count + 1) / 2))
            }
            let batch = Array(queue.prefix(take))
            queue.removeFirst(take)
            lock.unlock()

            let started = monotonicNanoseconds()
            let (committed, reruns) = process(batch)
            lastBatchNanoseconds = monotonicNanoseconds() - started
            lastBatch = batch.count

            lock.lock()
            arrivedSinceCompletion = 0
            stats.requests += batch.count
            stats.reruns += reruns
            if committed {
                stats.commits += 1
                stats.largestBatch = max(stats.largestBatch, batch.count)
            }
            lock.unlock()
            for request in batch { request.complete(nil) }
        }
    }

    /// Runs one batch to its commit. Returns whether a transaction was committed and how many
    /// times the batch was re-run; each request's `failure` says how it ended.
    private func process(_ batch: [WriteRequest]) -> (committed: Bool, reruns: Int) {
        guard let environment else {
            for request in batch {
                request.failure = LMDBError(code: .closed, operation: "write", message: "the environment is closed")
            }
            return (false, 0)
        }
        var active = batch
        var reruns = 0
        while !active.isEmpty {
            for request in active { request.failure = nil }
            do {
                try environment.withWriteAttempts { txn in
                    if options.isolation == .nestedTransactions && active.count > 1 {
                        try runNested(active, in: txn)
                    } else {
                        try runDirect(active, in: txn)
                    }
                    let flushStarted = monotonicNanoseconds()
                    try txn.commit()
                    let cost = monotonicNanoseconds() - flushStarted
                    commitCostNanoseconds = max(cost, commitCostNanoseconds - commitCostNanoseconds / 8)
                }
                return (true, reruns)
            } catch is RerunWithoutFailed {
                active.removeAll { $0.failure != nil }
                if !active.isEmpty {
                    reruns += 1
                    environment.options.logger.debug(
                        "a request of a group commit threw; its batch runs again without it",
                        metadata: ["path": "\(environment.path)", "requests": "\(active.count)"])
                }
            } catch {
                // The commit itself failed (or growing the map did): every request fails with it.
                for request in active where request.failure == nil { request.failure = error }
                return (false, reruns)
            }
        }
        return (false, reruns)
    }

    /// Each request in its own child transaction: one that throws is rolled back alone.
    private func runNested(_ requests: [WriteRequest], in txn: WriteTransaction) throws {
        for request in requests {
            do {
                try txn.nested { child in try request.run(child) }
            } catch {
                if txn.sawMapFull || isMapChange(error) { throw error }
                request.failure = error
            }
        }
    }

    /// Every request directly in the batch's transaction: one that throws aborts the batch,
    /// which is then run again without it.
    private func runDirect(_ requests: [WriteRequest], in txn: WriteTransaction) throws {
        for request in requests {
            do {
                try request.run(txn)
            } catch {
                if txn.sawMapFull || isMapChange(error) { throw error }
                request.failure = error
                throw RerunWithoutFailed()
            }
        }
    }

    private func isMapChange(_ error: Error) -> Bool {
        guard let code = (error as? LMDBError)?.code else { return false }
        return code == .mapFull || code == .mapResized
    }
}

/// Thrown inside a batch to abort it and run it again without the request that failed.
private struct RerunWithoutFailed: Error {}
