internal import LMDB

extension JobRepository {
    /// The jobs in `state` ordered by creation time, from the `idx.state_created` index:
    /// O(log n + limit), whatever the number of jobs.
    ///
    /// - Parameters:
    ///   - state: the state listed.
    ///   - order: oldest or newest first.
    ///   - limit: the most jobs in the page.
    ///   - after: the cursor of the previous page (keyset paging).
    public func jobs(in state: JobState, order: ListOrder = .oldestFirst, limit: Int = 100, after: PageCursor? = nil) throws -> JobPage {
        try jobs(matching: JobFilter(state: state), order: order, limit: limit, after: after)
    }

    /// The jobs matching `filter`, by creation time, a page at a time (`next` is set only when
    /// another job follows the page). With a state, the range is
    /// read from `idx.state_created`; without, from `idx.created` — never a scan of the records.
    /// A queue or tenant filter is applied to the indexed range (it skips the range's other jobs).
    public func jobs(matching filter: JobFilter, order: ListOrder = .oldestFirst, limit: Int = 100, after: PageCursor? = nil) throws -> JobPage {
        try jobs(matching: filter, order: order, limit: limit, after: after, unreadable: nil)
    }

    /// ``jobs(matching:order:limit:after:)``, handing each listed job whose record cannot be
    /// decoded to `unreadable` (if given) and going on, instead of failing the page.
    public func jobs(
        matching filter: JobFilter, order: ListOrder = .oldestFirst, limit: Int = 100, after: PageCursor? = nil,
        unreadable: ((JobStoreError) -> Void)?
    ) throws -> JobPage {
        try filter.validate()
        guard limit > 0 else { return JobPage(jobs: [], next: nil, examined: filter.examineAtMost.map { _ in 0 }) }
        var jobs: [Job] = []
        jobs.reserveCapacity(min(limit, 1000) + 1)
        let walk = try forEachView(matching: filter, order: order, after: after, unreadable: unreadable) { view in
            jobs.append(view.job())
            return jobs.count <= limit  // one more than the page: is there a next page?
        }
        let more = jobs.count > limit
        if more { jobs.removeLast() }
        let next = more ? jobs.last.map { PageCursor(createdAt: $0.createdAt, id: $0.id) } : walk.stoppedAt
        return JobPage(jobs: jobs, next: next, examined: filter.examineAtMost.map { _ in walk.examined })
    }

    /// The jobs matching `filter`, by creation time, each lent to `body` in place on LMDB's page
    /// (a ``JobRecordView``) until it returns `false`: the same index range and checks as
    /// ``jobs(matching:order:limit:after:)``, without building an owned `Job` per row — the
    /// way to read many jobs fast. One read transaction (one snapshot) for the whole walk, so
    /// keep `body` short; a damaged record throws `.corruptRecord`.
    ///
    /// ```swift
    /// var bytes = 0
    /// try store.forEachJob(matching: JobFilter(state: .pending)) { job in
    ///     bytes += job.payloadCount
    ///     return true
    /// }
    /// ```
    public func forEachJob(
        matching filter: JobFilter = JobFilter(), order: ListOrder = .oldestFirst, after: PageCursor? = nil,
        _ body: (borrowing JobRecordView) throws -> Bool
    ) throws {
        try filter.validate()
        try forEachView(matching: filter, order: order, after: after, unreadable: nil, body)
    }

    /// The one walk behind the listings: the filter's index range, each listed record checked and
    /// lent as a view; an unreadable one handed to `unreadable` when given. How many jobs of the
    /// range it looked at, and — when it stopped at ``JobFilter/examineAtMost`` — the position
    /// of the last one, where the next page goes on.
    @discardableResult
    private func forEachView(
        matching filter: JobFilter, order: ListOrder, after: PageCursor?, unreadable: ((JobStoreError) -> Void)?,
        _ body: (borrowing JobRecordView) throws -> Bool
    ) throws -> (examined: Int, stoppedAt: PageCursor?) {
        let earliest = filter.createdFrom ?? Timestamp(microseconds: .min)
        let latest = filter.createdUntil ?? Timestamp(microseconds: .max)
        func key(_ time: Timestamp, _ id: JobID) -> [UInt8] {
            filter.state.map { Keys.stateCreated($0, time, id) } ?? Keys.created(time, id)
        }
        let zero = JobID(high: 0, low: 0)
        var range = KeyRange<[UInt8]>(lower: .inclusive(key(earliest, zero)), upper: .exclusive(key(latest, zero)))
        if filter.createdUntil == nil {
            // Up to the end of the state's range (or the index).
            range.upper = filter.state.map { .exclusive([$0.rawValue + 1]) }
        }
        if let after {
            let position = key(after.createdAt, after.id)
            if order == .oldestFirst { range.lower = .exclusive(position) } else { range.upper = .exclusive(position) }
        }
        let index = filter.state == nil ? db.created : db.stateCreated
        let payloadNeedle = filter.payloadContains.map { Array($0.utf8) }
        let errorNeedle = filter.errorContains.map { Array($0.utf8) }
        let budget = filter.examineAtMost ?? .max
        var examined = 0
        var stoppedAt: PageCursor?
        try reading { txn in
            var failure: Error?
            try txn.forEach(index, in: range, reverse: order == .newestFirst) { key, _ in
                guard examined < budget else { return false }
                examined += 1
                do {
                    let id = try Keys.trailingID(key, index: index.name)
                    let more: Bool? = try id.withBytes { idBytes in
                        try txn.withValue(db.jobs, rawKey: idBytes) { record in
                            guard let record else { return nil }
                            let view = try JobRecordView(record, id: id)
                            if examined == budget { stoppedAt = view.cursor }
                            if let queue = filter.queue, !view.isInQueue(queue) { return true }
                            if let tenant = filter.tenant, !view.hasTenant(tenant) { return true }
                            if let name = filter.name, !view.hasName(name) { return true }
                            if let payloadNeedle, !view.payloadContains(payloadNeedle) { return true }
                            if let errorNeedle, !view.anyErrorContains(errorNeedle) { return true }
                            return try body(view)
                        }
                    }
                    guard let more else {
                        throw JobStoreError(.corruptRecord, "an index lists job \(id), which has no record", jobID: id, hint: "Run `jobstore verify`")
                    }
                    return more
                } catch let error as JobStoreError where unreadable != nil && (error.code == .corruptRecord || error.code == .newerFormat) {
                    unreadable?(error)
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
        }
        return (examined, stoppedAt)
    }

    /// See `JobCore/InspectableStore/commonErrors(since:limit:examineAtMost:)`: `idx.finished`'s
    /// failed range from `since`, newest first, each record's last error read in place.
    public func commonErrors(since: Timestamp, limit: Int = 10, examineAtMost: Int = 10_000) throws -> ErrorSummary {
        guard let finished = db.finished, examineAtMost > 0 else { return ErrorSummary(groups: [], examined: 0, complete: false) }
        let zero = JobID(high: 0, low: 0)
        let range = KeyRange<[UInt8]>(
            lower: .inclusive(Keys.finished(.failed, since, zero)), upper: .exclusive([JobState.failed.rawValue + 1]))
        var failures: [(message: String, at: Timestamp, id: JobID)] = []
        var complete = true
        try reading { txn in
            try txn.forEach(finished, in: range, reverse: true) { key, _ in
                guard failures.count < examineAtMost else {
                    complete = false
                    return false
                }
                let id = try Keys.trailingID(key, index: finished.name)
                try id.withBytes { idBytes in
                    try txn.withValue(db.jobs, rawKey: idBytes) { record in
                        guard let record else { return }
                        let view = try JobRecordView(record, id: id)
                        failures.append((view.lastErrorMessage ?? "(no error message)", view.updatedAt, id))
                    }
                }
                return true
            }
        }
        return ErrorSummary.grouping(failures, limit: limit, complete: complete)
    }

    /// How many jobs in `state` were created before `cutoff`, pipeline steps' jobs left out
    /// (what `prune(state:createdBefore:)` would delete). Reads each record's flags in place.
    public func count(_ state: JobState, createdBefore cutoff: Timestamp) throws -> Int {
        try countPrunable(db.stateCreated, state, before: cutoff)
    }

    /// How many jobs in `state` finished before `cutoff`, pipeline steps' jobs left out (what
    /// `prune(state:finishedBefore:)` would delete).
    public func count(_ state: JobState, finishedBefore cutoff: Timestamp) throws -> Int {
        guard let finished = db.finished else { return 0 }
        return try countPrunable(finished, state, before: cutoff)
    }

    private func countPrunable(_ index: Database<BytesCodec, EmptyCodec>, _ state: JobState, before cutoff: Timestamp) throws -> Int {
        let range = Keys.stateCreated(state, before: cutoff)  // idx.finished has the same layout
        return try reading { txn in
            var count = 0
            try txn.forEach(index, in: range) { key, _ in
                let id = try Keys.trailingID(key, index: index.name)
                let isStep = try txn.withValue(db.jobs, Keys.id(id)) { bytes in try bytes.map { try RecordFormat.isPipelineStep($0, id: id) } }
                if isStep == false { count += 1 }
                return true
            }
            return count
        }
    }

    /// Entries, depth and pages of every database of the store, by name.
    public func databaseStatistics() throws -> [(name: String, statistics: DatabaseStatistics)] {
        try reading { txn in
            var all = [(db.meta.name, try txn.statistics(db.meta)), (db.jobs.name, try txn.statistics(db.jobs))]
            for (database, _) in db.keyOnlyIndexes { all.append((database.name, try txn.statistics(database))) }
            all.append((db.unique.name, try txn.statistics(db.unique)))
            if let tables = db.pipeline {
                all.append((tables.records.name, try txn.statistics(tables.records)))
                all.append((tables.steps.name, try txn.statistics(tables.steps)))
                all.append((tables.stateCreated.name, try txn.statistics(tables.stateCreated)))
                all.append((tables.finished.name, try txn.statistics(tables.finished)))
            }
            return all.map { (name: $0.0, statistics: DatabaseStatistics($0.1)) }
        }
    }

    /// The ids of the jobs created in `start ..< end`, oldest first, from the `idx.created`
    /// index: O(log n + rows).
    public func jobIDs(createdFrom start: Timestamp, until end: Timestamp, limit: Int = .max) throws -> [JobID] {
        let range = KeyRange<[UInt8]>.between(Keys.created(start, JobID(high: 0, low: 0)), Keys.created(end, JobID(high: 0, low: 0)))
        let index = db.created
        return try reading { txn in
            var ids: [JobID] = []
            guard limit > 0 else { return ids }
            // Gathered in a chunk on the stack and appended a chunk at a time: appending each row
            // to the array (its uniqueness and capacity checks) was a third of the scan.
            try withUnsafeTemporaryAllocation(of: JobID.self, capacity: 256) { chunk in
                var filled = 0
                try txn.forEach(index, in: range) { key, _ in
                    chunk[filled] = try Keys.trailingID(key, index: index.name)  // JobID is trivial: no deinitialising
                    filled += 1
                    if filled == chunk.count {
                        ids.append(contentsOf: chunk)
                        filled = 0
                    }
                    return ids.count + filled < limit
                }
                ids.append(contentsOf: chunk[..<filled])
            }
            return ids
        }
    }

    /// The jobs created in `start ..< end`, oldest first.
    public func jobs(createdFrom start: Timestamp, until end: Timestamp, limit: Int = 1000) throws -> [Job] {
        let ids = try jobIDs(createdFrom: start, until: end, limit: limit)
        return try jobs(ids).compactMap { $0 }
    }

    /// The bytes the store takes: its pages in use (the data file may be larger: free pages,
    /// and the map's growth ahead).
    public func storageBytes() throws -> Int { try environmentInfo().usedBytes }

    /// How many running jobs hold a lease that expired before now — their worker stopped, and
    /// `rescueExpiredLeases` (or a scheduler) will put them back. O(log n + that many).
    public func expiredLeaseCount() throws -> Int {
        let range = KeyRange<[UInt8]>.upTo(Keys.lease(.now, JobID(high: 0, low: 0)))
        return try reading { txn in
            var count = 0
            try txn.forEach(db.lease, in: range) { _, _ in
                count += 1
                return true
            }
            return count
        }
    }

    // MARK: Counts, O(1)

    /// How many jobs are in `state` (a counter, O(1); see ``counts()``).
    public func count(_ state: JobState) throws -> Int {
        try counts()[state] ?? 0
    }

    /// How many jobs are in each state (every state present, zeros included): the six counters,
    /// read in one snapshot, or — while no transaction of any process has committed since the
    /// last read — those same counts again, without a read transaction. (The last committed
    /// transaction's id is in LMDB's lock file, shared by every process; a commit changes it,
    /// so a memo of another process's past is never served.)
    public func counts() throws -> [JobState: Int] {
        let last = try lastTransactionID()
        if let memo = countsMemo.withLock({ $0 }), memo.transaction == last { return memo.counts }
        return try reading { txn in
            var counts = [JobState: Int](minimumCapacity: JobState.every.count)
            for state in JobState.every {
                counts[state] = Int(try Counters.read(txn, db.meta, MetaKey.stateCounter(state)))
            }
            let transaction = try txn.id
            countsMemo.withLock { memo in
                if transaction >= memo?.transaction ?? .min { memo = (transaction, counts) }
            }
            return counts
        }
    }

    /// How many jobs of `queue` are in `state`.
    public func count(queue: String, state: JobState) throws -> Int {
        try reading { txn in Int(try Counters.read(txn, db.meta, MetaKey.queueCounter(queue, state))) }
    }

    /// Per queue, how many of its jobs are in each state (states with no job left out).
    public func queueCounts() throws -> [String: [JobState: Int]] {
        try reading { txn in
            var result: [String: [JobState: Int]] = [:]
            for state in JobState.allCases {
                let prefix = MetaKey.queueCounterPrefix(state)
                try txn.forEach(db.meta, prefix: Array(prefix.utf8)) { key, value in
                    let queue = MetaKey.queue(fromCounterKey: key, state: state)
                    result[queue, default: [:]][state] = Int(try Counters.decode(value, key: prefix + queue))
                    return true
                }
            }
            return result
        }
    }

    // MARK: Streaming

    /// Visits every job in id (creation) order, `chunkSize` jobs per short read transaction, so a
    /// long walk never pins old pages (which would make a live store's file grow). Return false
    /// from `body` to stop. Jobs changed during the walk are seen as of their chunk's snapshot.
    public func forEachJob(chunkSize: Int = 1000, _ body: (Job) throws -> Bool) throws {
        try forEachRecord(chunkSize: chunkSize) { id, bytes in try body(try RecordFormat.decode(bytes, id: id)) }
    }

    /// ``forEachJob(chunkSize:_:)``, handing each record that cannot be decoded (corrupt, or of a
    /// newer format) to `unreadable` instead of stopping: for exports and repairs that must save
    /// what can be saved.
    public func forEachJob(chunkSize: Int = 1000, unreadable: (JobStoreError) -> Void, _ body: (Job) throws -> Bool) throws {
        try forEachRecord(chunkSize: chunkSize) { id, bytes in
            let job: Job
            do {
                job = try RecordFormat.decode(bytes, id: id)
            } catch let error as JobStoreError {
                unreadable(error)
                return true
            }
            return try body(job)
        }
    }

    /// Visits the fixed header of every job, reading state, priority, times and attempts straight
    /// from LMDB's pages without decoding the rest of the record (a full scan, no index).
    public func forEachJobHeader(chunkSize: Int = 10_000, _ body: (JobID, JobHeader) throws -> Bool) throws {
        try forEachRecord(chunkSize: chunkSize) { id, bytes in
            let header = try RecordFormat.header(bytes, id: id)
            return try body(id, JobHeader(
                state: header.state, priority: header.priority, attempts: header.attempts,
                createdAt: header.createdAt, runAt: header.runAt))
        }
    }

    private func forEachRecord(chunkSize: Int, _ body: (JobID, UnsafeRawBufferPointer) throws -> Bool) throws {
        try JobStoreError.requirePositive(chunkSize, "chunkSize")
        var after: [UInt8]?
        var stopped = false
        while !stopped {
            var seen = 0
            try reading { txn in
                let range = after.map { KeyRange<[UInt8]>.after($0) } ?? .all
                try txn.forEach(db.jobs, in: range) { key, value in
                    guard let id = JobID(bytes: key) else {
                        throw JobStoreError(.corruptRecord, "a key of \(key.count) bytes in the jobs database is not a job id")
                    }
                    seen += 1
                    if try !body(id, value) {
                        stopped = true
                        return false
                    }
                    if seen == chunkSize {
                        after = Array(key)
                        return false
                    }
                    return true
                }
            }
            if seen < chunkSize { break }
        }
    }
}
