internal import LMDB

/// What a claim lets through: not the jobs of paused queues, and no more starts than the rate
/// limits' buckets hold. Loaded once per claim; the buckets it used are written back.
struct ClaimGate {
    var paused: Set<String> = []
    var buckets: [String: RateLimit] = [:]
    var used = Set<String>()

    /// Whether a claim must read a candidate's queue to judge it.
    var checksQueues: Bool { !paused.isEmpty || !buckets.isEmpty }

    /// Lets a job of `queue` through, taking a token if the queue is rate-limited.
    mutating func admit(_ queue: String) -> Bool {
        if paused.contains(queue) { return false }
        guard var bucket = buckets[queue] else { return true }
        guard bucket.tokens >= 1 else { return false }
        bucket.tokens -= 1
        buckets[queue] = bucket
        used.insert(queue)
        return true
    }
}

extension JobTransaction {
    /// Pauses `queue`: claims take none of its jobs (from this process or any other on the
    /// store) until ``resume(queue:)``; running jobs finish. Jobs can still be inserted into it.
    /// Pausing a paused queue keeps its first pause time. `since` (a restore) is the pause time
    /// to record instead of now.
    public func pause(queue: String, since: Timestamp? = nil) throws {
        try JobStoreError.requireQueueName(queue)
        if try !isPaused(queue) {
            try txn.put(db.meta, MetaKey.pausedQueue(queue), Counters.encode((since ?? now).microseconds))
            try recordQueueEvent(.queuePaused, queue)
        }
    }

    /// Resumes a paused queue (a running one is left as it is). A scheduler of any process on the
    /// store sees the commit and claims its ready jobs.
    public func resume(queue: String) throws {
        try JobStoreError.requireQueueName(queue)
        if try txn.delete(db.meta, MetaKey.pausedQueue(queue)) { try recordQueueEvent(.queueResumed, queue) }
    }

    /// Whether `queue` is paused, as this transaction sees it.
    public func isPaused(_ queue: String) throws -> Bool {
        try txn.contains(db.meta, MetaKey.pausedQueue(queue))
    }

    /// Limits the job starts of `queue` to `starts` per `period` across every process (see
    /// `RateLimit`); the bucket starts full. Replaces a limit the queue had.
    public func setRateLimit(queue: String, starts: Int, per period: Duration) throws {
        try JobStoreError.requireQueueName(queue)
        let limit = try RateLimit(starts: starts, per: period, at: now)
        try txn.put(db.meta, MetaKey.rateLimit(queue), limit.encode())
        try recordQueueEvent(.queueLimited, JobEvent.limited(queue, starts: starts, per: period))
    }

    /// Removes `queue`'s rate limit (none is fine).
    public func removeRateLimit(queue: String) throws {
        try JobStoreError.requireQueueName(queue)
        if try txn.delete(db.meta, MetaKey.rateLimit(queue)) { try recordQueueEvent(.queueUnlimited, queue) }
    }

    /// `queue`'s rate limit as this transaction sees it, or `nil`.
    public func rateLimit(_ queue: String) throws -> RateLimit? {
        try txn.withValue(db.meta, MetaKey.rateLimit(queue)) { bytes in try bytes.map { try RateLimit.decode($0, queue: queue) } }
    }

    /// The gate of a claim from `queue` (or from every queue): paused queues and rate buckets,
    /// refilled to now.
    func claimGate(_ queue: String?) throws -> ClaimGate {
        var gate = ClaimGate()
        // Most stores control no queue: one seek finds no `queue/` key and the claim goes on.
        var anyControl = false
        try txn.forEach(db.meta, prefix: Array(MetaKey.queueControlPrefix.utf8)) { _, _ in
            anyControl = true
            return false
        }
        guard anyControl else { return gate }
        if let queue {
            if try isPaused(queue) { gate.paused.insert(queue) }
            if let limit = try rateLimit(queue) { gate.buckets[queue] = limit.refilled(at: now) }
            return gate
        }
        gate.paused = Set(try db.pausedQueues(txn).keys)
        gate.buckets = try db.rateLimits(txn).mapValues { $0.refilled(at: now) }
        return gate
    }

    /// Writes back the buckets a claim took tokens from.
    func save(_ gate: ClaimGate) throws {
        for queue in gate.used {
            if let bucket = gate.buckets[queue] { try txn.put(db.meta, MetaKey.rateLimit(queue), bucket.encode()) }
        }
    }
}

extension Databases {
    /// Every `meta` entry under `prefix`, by the name that follows the prefix, decoded.
    func metaEntries<T>(_ txn: Transaction, prefix: String, _ decode: (String, UnsafeRawBufferPointer) throws -> T) throws -> [String: T] {
        var entries: [String: T] = [:]
        try txn.forEach(meta, prefix: Array(prefix.utf8)) { key, value in
            let name = String(decoding: key.dropFirst(prefix.utf8.count), as: UTF8.self)
            entries[name] = try decode(name, value)
            return true
        }
        return entries
    }

    /// The paused queues, with when each was paused.
    func pausedQueues(_ txn: Transaction) throws -> [String: Timestamp] {
        try metaEntries(txn, prefix: MetaKey.pausedQueuePrefix) { name, value in
            Timestamp(microseconds: try Counters.decode(value, key: MetaKey.pausedQueue(name)))
        }
    }

    /// The rate-limited queues' buckets, as stored.
    func rateLimits(_ txn: Transaction) throws -> [String: RateLimit] {
        try metaEntries(txn, prefix: MetaKey.rateLimitPrefix) { name, value in try RateLimit.decode(value, queue: name) }
    }
}

extension JobRepository {
    /// Limits `queue` to `starts` job starts per `period` (see ``JobTransaction/setRateLimit(queue:starts:per:)``).
    public func setRateLimit(queue: String, starts: Int, per period: Duration) throws {
        try write { try $0.setRateLimit(queue: queue, starts: starts, per: period) }
    }
    /// Removes `queue`'s rate limit.
    public func removeRateLimit(queue: String) throws { try write { try $0.removeRateLimit(queue: queue) } }

    /// Pauses `queue` (see `JobTransaction/pause(queue:)`).
    public func pause(queue: String) throws { try write { try $0.pause(queue: queue) } }
    /// Pauses `queue` (see `JobTransaction/pause(queue:)`).
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
            let paused = try db.pausedQueues(txn)
            let limits = try db.rateLimits(txn)
            let now = Timestamp.now
            return try Set(counts.keys).union(paused.keys).union(limits.keys).sorted().map { name in
                QueueSummary(
                    name: name, counts: counts[name] ?? [:], pausedAt: paused[name],
                    oldestReadyAt: try oldestReady(name, before: now, txn), rateLimit: limits[name]?.refilled(at: now))
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
