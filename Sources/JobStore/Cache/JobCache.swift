import Logging
import Locking
import Synchronization

/// The cache's limits.
public struct CacheOptions: Sendable, Hashable {
    /// Whether reads go through the cache.
    public var enabled: Bool = true
    /// The most jobs kept (at least 1; a store refuses to open with less).
    public var maxEntries: Int = 100_000
    /// The most bytes of job data kept (payloads, results and strings, approximately; at least 1).
    public var maxBytes: Int = 64 << 20

    /// Default limits: 100,000 jobs, 64 MiB.
    public init(enabled: Bool = true, maxEntries: Int = 100_000, maxBytes: Int = 64 << 20) {
        self.enabled = enabled
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }
}

/// The cache's counters.
public struct CacheStatistics: Sendable, Hashable, Codable {
    /// Reads answered from the cache.
    public var hits = 0
    /// Reads that went to LMDB.
    public var misses = 0
    /// Entries evicted to stay within the limits.
    public var evictions = 0
    /// Times the whole cache was dropped because another process (or an unseen commit) changed the store.
    public var invalidations = 0
    /// Jobs held now.
    public var entries = 0
    /// Bytes held now (approximate).
    public var bytes = 0

    /// Hits over all reads, 0…1.
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
}

/// A write-through cache of jobs that is never wrong.
///
/// - **Filled only with committed data**: a write transaction of this process first *prepares*
///   the cache (before its commit): the jobs it changes are taken out and may not be filled
///   from a read until the commit is known. Right after the commit, on the committing thread,
///   the changed jobs that were cached go back in with their new values (write-through; a job
///   nobody read enters on its first read). An aborted write only lifts the block.
/// - **Coherent across processes**: before answering, the cache compares LMDB's last committed
///   transaction id with the last one it knows. Transactions this process prepared are its own;
///   any other one means another process committed, and the cache drops everything. So the
///   process's own commits never wipe it, whatever order their threads report them in.
/// - **Ordered**: every entry carries the stamp (transaction id, write sequence) of the data it
///   holds; an older stamp never replaces a newer one.
/// - **Bounded** by entries and bytes; eviction is CLOCK (second chance), which keeps jobs read
///   again since the hand last passed.
final class JobCache: Sendable {
    struct Stamp: Comparable {
        var transaction: Int
        var sequence: UInt64
        static func < (a: Stamp, b: Stamp) -> Bool { (a.transaction, a.sequence) < (b.transaction, b.sequence) }
    }

    private struct Slot {
        var job: Job
        var stamp: Stamp
        var bytes: Int
        var referenced: Bool
    }

    private struct State {
        var slots: [Slot?] = []
        var index: [JobID: Int] = [:]
        var free: [Int] = []
        var hand = 0
        var bytes = 0
        /// The cache reflects every commit up to this transaction id.
        var knownTransaction = -1
        /// Transactions of this process prepared and not yet known: their id → the jobs they change.
        var pending: [Int: Set<JobID>] = [:]
        var statistics = CacheStatistics()
    }

    let options: CacheOptions
    private let logger: Logger
    private let state = Lock(State())

    init(options: CacheOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    var statistics: CacheStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.entries = state.index.count
            statistics.bytes = state.bytes
            return statistics
        }
    }

    /// The cached job, after catching up with the commits made since the cache last looked
    /// (`lastTransaction` is LMDB's last committed transaction id now). Counts a hit or a miss.
    func get(_ id: JobID, lastTransaction: Int) -> Job? {
        state.withLock { state in
            synchronize(&state, through: lastTransaction)
            guard let slot = state.index[id], var entry = state.slots[slot] else {
                state.statistics.misses += 1
                return nil
            }
            state.statistics.hits += 1
            if !entry.referenced {
                entry.referenced = true
                state.slots[slot] = entry
            }
            return entry.job
        }
    }

    /// Fills the cache after a miss, if the read's snapshot `transaction` is the newest the cache
    /// knows and no write of this process is changing the job.
    func fill(_ job: Job, transaction: Int, sequence: UInt64) {
        state.withLock { state in
            guard transaction == state.knownTransaction, !state.pending.values.contains(where: { $0.contains(job.id) }) else { return }
            insert(&state, job, Stamp(transaction: transaction, sequence: sequence))
        }
    }

    /// Called inside write transaction `transaction`, before its commit: takes the jobs it
    /// changes out of the cache and blocks their fills until the commit is known. Returns the
    /// ids that were cached (they go back in on commit).
    func prepare(transaction: Int, ids: [JobID]) -> Set<JobID> {
        state.withLock { state in
            if let blocked = state.pending[transaction] {
                state.pending[transaction] = blocked.union(ids)
            } else {
                state.pending[transaction] = Set(ids)
            }
            var cached = Set<JobID>()
            for id in ids where state.index[id] != nil {
                cached.insert(id)
                remove(&state, id)
            }
            return cached
        }
    }

    /// Called right after `transaction` committed: the cache now knows it, and the changed jobs
    /// that were cached (`cached`) go back in with their new values.
    func commit(_ changes: [JobChange], transaction: Int, sequence: UInt64, cached: Set<JobID>) {
        state.withLock { state in
            synchronize(&state, through: transaction)
            let stamp = Stamp(transaction: transaction, sequence: sequence)
            for change in changes {
                if let job = change.job {
                    insert(&state, job, stamp, onlyIfPresent: !cached.contains(change.id))
                } else if let slot = state.index[change.id], let existing = state.slots[slot], existing.stamp <= stamp {
                    remove(&state, change.id)
                }
            }
        }
    }

    /// Called when `transaction` did not commit: lifts its block. If a reader meanwhile took a
    /// transaction of that id (another process's, after this one's failed commit) for ours,
    /// drops everything.
    func abandon(transaction: Int) {
        state.withLock { state in
            state.pending[transaction] = nil
            if state.knownTransaction >= transaction { clear(&state, reason: "a write of this process failed to commit") }
        }
    }

    /// Drops everything.
    func clear() {
        state.withLock { clear(&$0, reason: "asked") }
    }

    /// Catches up with every commit up to `last`: when each transaction in between is one this
    /// process prepared (its jobs were taken out), what the cache holds is still right; any
    /// other one is another process's commit, and anything may be stale.
    private func synchronize(_ state: inout State, through last: Int) {
        guard last > state.knownTransaction else { return }
        let gap = last - state.knownTransaction
        let own = state.pending.keys.count { $0 > state.knownTransaction && $0 <= last }
        if own != gap { clear(&state, reason: "another process committed") }
        state.knownTransaction = last
        if !state.pending.isEmpty { state.pending = state.pending.filter { $0.key > last } }
    }

    private func clear(_ state: inout State, reason: String) {
        if !state.index.isEmpty {
            state.statistics.invalidations += 1
            logger.debug("job cache dropped", metadata: ["reason": "\(reason)", "entries": "\(state.index.count)"])
        }
        state.slots = []
        state.index = [:]
        state.free = []
        state.hand = 0
        state.bytes = 0
    }

    private func size(of job: Job) -> Int {
        160 + job.payload.count + (job.result?.count ?? 0) + job.name.utf8.count + job.queue.utf8.count
            + job.errors.reduce(0) { $0 + 32 + $1.message.utf8.count }
    }

    private func insert(_ state: inout State, _ job: Job, _ stamp: Stamp, onlyIfPresent: Bool = false) {
        let bytes = size(of: job)
        if let slot = state.index[job.id], let existing = state.slots[slot] {
            guard existing.stamp <= stamp else { return }
            state.bytes += bytes - existing.bytes
            state.slots[slot] = Slot(job: job, stamp: stamp, bytes: bytes, referenced: true)
            evict(&state, keeping: slot)
            return
        }
        // A written job nobody read (e.g. each of a bulk load) is not worth a slot: its first read fills it.
        if onlyIfPresent || bytes > options.maxBytes { return }
        while state.index.count >= options.maxEntries || state.bytes + bytes > options.maxBytes {
            if !evictOne(&state) { break }
        }
        let slot: Int
        if let reused = state.free.popLast() {
            slot = reused
            state.slots[slot] = Slot(job: job, stamp: stamp, bytes: bytes, referenced: false)
        } else {
            slot = state.slots.count
            state.slots.append(Slot(job: job, stamp: stamp, bytes: bytes, referenced: false))
        }
        state.index[job.id] = slot
        state.bytes += bytes
    }

    private func remove(_ state: inout State, _ id: JobID) {
        guard let slot = state.index[id], let existing = state.slots[slot] else { return }
        state.slots[slot] = nil
        state.index[id] = nil
        state.free.append(slot)
        state.bytes -= existing.bytes
    }

    private func evict(_ state: inout State, keeping slot: Int) {
        while state.bytes > options.maxBytes, state.index.count > 1 {
            if !evictOne(&state, sparing: slot) { break }
        }
    }

    /// Advances the CLOCK hand to an entry not referenced since the last pass and evicts it.
    private func evictOne(_ state: inout State, sparing spared: Int = -1) -> Bool {
        guard !state.index.isEmpty, !state.slots.isEmpty else { return false }
        for _ in 0..<(2 * state.slots.count + 1) {
            if state.hand >= state.slots.count { state.hand = 0 }
            let slot = state.hand
            state.hand += 1
            guard var entry = state.slots[slot], slot != spared else { continue }
            if entry.referenced {
                entry.referenced = false
                state.slots[slot] = entry
                continue
            }
            state.slots[slot] = nil
            state.index[entry.job.id] = nil
            state.free.append(slot)
            state.bytes -= entry.bytes
            state.statistics.evictions += 1
            return true
        }
        return false
    }
}
