import Synchronization

/// The cache's limits.
public struct CacheOptions: Sendable, Hashable {
    /// Whether reads go through the cache.
    public var enabled: Bool = true
    /// The most jobs kept.
    public var maxEntries: Int = 100_000
    /// The most bytes of job data kept (payloads, results and strings, approximately).
    public var maxBytes: Int = 64 << 20

    /// Default limits: 100,000 jobs, 64 MiB.
    public init(enabled: Bool = true, maxEntries: Int = 100_000, maxBytes: Int = 64 << 20) {
        self.enabled = enabled
        self.maxEntries = max(1, maxEntries)
        self.maxBytes = max(1, maxBytes)
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
/// - **Filled only with committed data**: after a write commits, its changes are applied to the
///   jobs the cache holds (a new job enters on its first read); an aborted write never reaches it. A read that missed fills it only if no commit happened
///   since the read's snapshot (its transaction id is the last one the cache knows).
/// - **Ordered**: every entry carries the stamp (transaction id, write sequence) of the data it
///   holds; an older stamp never replaces a newer one, so concurrent writers cannot leave a stale
///   version behind.
/// - **Coherent across processes**: before answering, the cache compares LMDB's last committed
///   transaction id with the last one it knows. If another process committed, it drops everything.
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
        var knownTransaction = -1
        var statistics = CacheStatistics()
    }

    let options: CacheOptions
    private let state = Mutex(State())

    init(options: CacheOptions) {
        self.options = options
    }

    var statistics: CacheStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.entries = state.index.count
            statistics.bytes = state.bytes
            return statistics
        }
    }

    /// The cached job, after checking that no unseen commit happened (`lastTransaction` is
    /// LMDB's last committed transaction id now). Counts a hit or a miss.
    func get(_ id: JobID, lastTransaction: Int) -> Job? {
        state.withLock { state in
            Self.synchronize(&state, with: lastTransaction)
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

    /// Fills the cache after a miss, if the read's snapshot `transaction` is still the newest.
    func fill(_ job: Job, transaction: Int, sequence: UInt64) {
        state.withLock { state in
            guard transaction == state.knownTransaction else { return }
            insert(&state, job, Stamp(transaction: transaction, sequence: sequence))
        }
    }

    /// Applies the changes of a write that committed as `transaction`.
    func apply(_ changes: [JobChange], transaction: Int, sequence: UInt64) {
        state.withLock { state in
            if state.knownTransaction != transaction && state.knownTransaction != transaction - 1 {
                // A commit happened that this process did not see: anything may be stale.
                Self.clear(&state)
            }
            state.knownTransaction = max(state.knownTransaction, transaction)
            let stamp = Stamp(transaction: transaction, sequence: sequence)
            for change in changes {
                if let job = change.job {
                    insert(&state, job, stamp, onlyIfPresent: true)
                } else {
                    remove(&state, change.id, stamp)
                }
            }
        }
    }

    /// Drops everything.
    func clear() {
        state.withLock { Self.clear(&$0) }
    }

    private static func synchronize(_ state: inout State, with lastTransaction: Int) {
        if lastTransaction != state.knownTransaction {
            clear(&state)
            state.knownTransaction = lastTransaction
        }
    }

    private static func clear(_ state: inout State) {
        if !state.index.isEmpty { state.statistics.invalidations += 1 }
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

    private func remove(_ state: inout State, _ id: JobID, _ stamp: Stamp) {
        guard let slot = state.index[id], let existing = state.slots[slot], existing.stamp <= stamp else { return }
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
