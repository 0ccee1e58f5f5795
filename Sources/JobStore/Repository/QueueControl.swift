import LMDB

/// A queue as an operator sees it: its jobs per state, whether it is paused, and how long its
/// longest-waiting ready job has waited.
public struct QueueSummary: Sendable, Hashable {
    /// The queue's name.
    public var name: String
    /// Its jobs per state (states with none left out).
    public var counts: [JobState: Int]
    /// When it was paused; `nil` while it runs.
    public var pausedAt: Timestamp?
    /// The earliest runAt among its pending jobs whose time has come: the job that has waited
    /// longest to start. `nil` when none is ready.
    public var oldestReadyAt: Timestamp?
}

extension JobTransaction {
    /// Pauses `queue`: claims take none of its jobs (from this process or any other on the
    /// store) until ``resume(queue:)``; running jobs finish. Jobs can still be inserted into it.
    /// Pausing a paused queue keeps its first pause time.
    public func pause(queue: String) throws {
        try JobStoreError.requireQueueName(queue)
        if try !isPaused(queue) {
            try txn.put(db.meta, MetaKey.pausedQueue(queue), Counters.encode(now.microseconds))
        }
    }

    /// Resumes a paused queue (a running one is left as it is). A scheduler of any process on the
    /// store sees the commit and claims its ready jobs.
    public func resume(queue: String) throws {
        try JobStoreError.requireQueueName(queue)
        try txn.delete(db.meta, MetaKey.pausedQueue(queue))
    }

    /// Whether `queue` is paused, as this transaction sees it.
    public func isPaused(_ queue: String) throws -> Bool {
        try txn.contains(db.meta, MetaKey.pausedQueue(queue))
    }

    /// Every paused queue's name, for a claim from any queue.
    func pausedQueues() throws -> Set<String> {
        var paused = Set<String>()
        try txn.forEach(db.meta, prefix: Array(MetaKey.pausedQueuePrefix.utf8)) { key, _ in
            paused.insert(String(decoding: key.dropFirst(MetaKey.pausedQueuePrefix.utf8.count), as: UTF8.self))
            return true
        }
        return paused
    }
}

extension JobStoreError {
    static func requireQueueName(_ queue: String) throws {
        let bytes = queue.utf8.count
        guard bytes > 0, bytes <= JobLimits.maxQueueBytes, !queue.utf8.contains(0) else {
            throw JobStoreError(.invalidArgument, "'\(queue)' is not a queue name: 1…\(JobLimits.maxQueueBytes) bytes of UTF-8 without NUL")
        }
    }
}

extension JobRepository {
    /// Pauses `queue` (see ``JobTransaction/pause(queue:)``).
    public func pause(queue: String) throws { try write { try $0.pause(queue: queue) } }
    /// Pauses `queue` (see ``JobTransaction/pause(queue:)``).
    public func pause(queue: String) async throws { try await write { try $0.pause(queue: queue) } }
    /// Resumes `queue` (see ``JobTransaction/resume(queue:)``).
    public func resume(queue: String) throws { try write { try $0.resume(queue: queue) } }
    /// Resumes `queue` (see ``JobTransaction/resume(queue:)``).
    public func resume(queue: String) async throws { try await write { try $0.resume(queue: queue) } }

    /// Every queue that has jobs or is paused: its counts per state, paused or not, and its
    /// longest-waiting ready job — from the counters, the paused keys and one seek per priority
    /// level of its ready index, in one snapshot.
    public func queues() throws -> [QueueSummary] {
        let counts = try queueCounts()
        return try reading { txn in
            var paused: [String: Timestamp] = [:]
            try txn.forEach(db.meta, prefix: Array(MetaKey.pausedQueuePrefix.utf8)) { key, value in
                let name = String(decoding: key.dropFirst(MetaKey.pausedQueuePrefix.utf8.count), as: UTF8.self)
                paused[name] = Timestamp(microseconds: try Counters.decode(value, key: MetaKey.pausedQueue(name)))
                return true
            }
            let now = Timestamp.now
            return try Set(counts.keys).union(paused.keys).sorted().map { name in
                QueueSummary(
                    name: name, counts: counts[name] ?? [:], pausedAt: paused[name],
                    oldestReadyAt: try oldestReady(name, before: now, txn))
            }
        }
    }

    /// The earliest runAt not after `now` among `queue`'s pending jobs: the first entry of each
    /// priority level of `idx.ready` (one seek per level).
    private func oldestReady(_ queue: String, before now: Timestamp, _ txn: Transaction) throws -> Timestamp? {
        let prefix = Keys.readyQueuePrefix(queue)
        var oldest: Timestamp?
        try txn.withCursor(db.ready) { cursor in
            var found = try cursor.seek(prefix: prefix)
            while found {
                let (level, runAt) = try cursor.withCurrent { key, _ in try Keys.readyOrder(key, prefixLength: prefix.count) }
                if runAt <= now { oldest = min(oldest ?? runAt, runAt) }
                if level == 255 { break }
                found = try cursor.seek(atLeast: prefix + [level + 1])
                if found { found = try cursor.withCurrent { key, _ in key.starts(with: prefix) } }
            }
        }
        return oldest
    }
}
