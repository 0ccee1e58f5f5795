internal import LMDB

// Each job's timeline (the end of its record) and the store's history (`history`), read and
// pruned. They are written with every change of a job (JobTransaction.putRecord and record).

extension JobRepository {
    /// The job's timeline: its newest events (at most `JobEvent/timelineLimit`), oldest first,
    /// and how many older ones were dropped. Empty for a job that does not exist, or that was
    /// created before the store's format 3.
    public func events(of id: JobID) throws -> JobTimeline {
        try reading { txn in try self.events(of: id, in: txn) }
    }

    func events(of id: JobID, in txn: Transaction) throws -> JobTimeline {
        try txn.withValue(db.jobs, Keys.id(id)) { bytes in
            try bytes.flatMap { try RecordFormat.timeline($0, id: id) }.map { try EventFormat.decodeTimeline($0, id: id) } ?? JobTimeline()
        }
    }

    /// A page of the store's history, in commit order: the events after position `after` (as
    /// a previous page's `next` gave it), or from time `since`, or from the oldest kept.
    /// Answered from the `history` database (a seek, then the page in key order), never a scan.
    ///
    /// - Throws: `.invalidArgument` for a `limit` below 1; `.corruptRecord` for an entry that
    ///   cannot be read (`jobstore verify` lists them all).
    public func history(after: HistoryPosition? = nil, since: Timestamp? = nil, limit: Int = 1000) throws -> HistoryPage {
        try JobStoreError.requirePositive(limit, "the history page size")
        guard let events = db.events else { return HistoryPage(entries: [], next: nil) }
        let range: KeyRange<[UInt8]> =
            if let after { .after(EventFormat.historyKey(after)) }
            else if let since { .from(EventFormat.historyKey(HistoryPosition(time: since, sequence: 0))) }
            else { .all }
        var entries: [HistoryEntry] = []
        var more = false
        try reading { txn in
            try txn.forEach(events.history, in: range) { key, value in
                guard entries.count < limit else {
                    more = true
                    return false
                }
                entries.append(try EventFormat.decodeHistory(key: key, value: value))
                return true
            }
        }
        return HistoryPage(entries: entries, next: more ? entries.last?.position : nil)
    }

    /// The position of the newest event in the history, or `nil` when it is empty: where a
    /// reader that wants only what happens from now on starts (`jobstore jobs history --follow`).
    public func lastHistoryPosition() throws -> HistoryPosition? {
        guard let events = db.events else { return nil }
        return try reading { txn in try events.lastPosition(in: txn) }
    }

    /// How many of the history's events were recorded before `cutoff` (what
    /// `pruneHistory(before:batchSize:)` would delete). Counts the keys of that range: O(k).
    public func countHistory(before cutoff: Timestamp) throws -> Int {
        guard let events = db.events else { return 0 }
        var count = 0
        try reading { txn in
            try txn.forEach(events.history, in: EventDatabases.keys(before: cutoff)) { _, _ in
                count += 1
                return true
            }
        }
        return count
    }

    /// Deletes the history's events recorded before `cutoff` (its clock), oldest first, at most
    /// `batchSize` per transaction. Returns how many were deleted. Jobs' own timelines are kept
    /// with their jobs (and go when the job is deleted).
    @discardableResult
    public func pruneHistory(before cutoff: Timestamp, batchSize: Int = 10_000) throws -> Int {
        try inBatches(batchSize) { txn, _ in (try txn.pruneHistory(before: cutoff, limit: batchSize), nil) }
    }

    /// Deletes the history's events recorded before `cutoff`; see ``pruneHistory(before:batchSize:)``.
    @discardableResult
    public func pruneHistory(before cutoff: Timestamp, batchSize: Int = 10_000) async throws -> Int {
        try await inBatches(batchSize) { txn, _ in (try txn.pruneHistory(before: cutoff, limit: batchSize), nil) }
    }
}

extension JobTransaction {
    /// Deletes up to `limit` of the history's oldest events, recorded before `cutoff`. Returns
    /// how many were deleted.
    public func pruneHistory(before cutoff: Timestamp, limit: Int) throws -> Int {
        try JobStoreError.requirePositive(limit, "the prune limit (batchSize)")
        guard let events = db.events else { return 0 }
        var doomed: [[UInt8]] = []
        try txn.forEach(events.history, in: EventDatabases.keys(before: cutoff)) { key, _ in
            doomed.append(Array(key))
            return doomed.count < limit
        }
        for key in doomed { try txn.delete(events.history, key) }
        return doomed.count
    }
}
