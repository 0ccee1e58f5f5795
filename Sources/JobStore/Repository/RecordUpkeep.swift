internal import LMDB

// How every change keeps a job's record, its index entries, the counters and the history in
// step, inside the transaction: the one place that writes them.

extension JobTransaction {
    func replace(_ old: Job, with new: Job, recording event: JobEvent.Kind) throws {
        try JobLimits.validate(new)
        let recorded = recorded(event, new)
        try putRecord(new, event: recorded, inserting: false)
        // Index by index, only the entries that moved; the creation-time entry never does (the
        // id and creation time cannot change), so its key is not even built.
        for kind in IndexEntry.kinds where kind != .created || old.createdAt != new.createdAt || old.id != new.id {
            try IndexEntry.withKey(kind, of: old) { before in
                try IndexEntry.withKey(kind, of: new) { after in
                    if let before, let after, before.elementsEqual(after) { return }
                    if let before { try removeEntry(kind, key: before) }
                    if let after { try putEntry(kind, key: after, of: new) }
                }
            }
        }
        if old.state != new.state || old.queue != new.queue {
            count(old, -1)
            count(new, +1)
        }
        try record(recorded, of: new.id)
        changes.append(JobChange(kind: .updated, id: new.id, job: new, previousState: old.state))
        if pipelineWork.add(new, from: old.state) { try advancePipelines() }
    }

    /// Deletes a job (its timeline with it) and its index entries; the history records `event`
    /// (deleted or pruned).
    func remove(_ job: Job, recording event: JobEvent.Kind) throws {
        try txn.delete(db.jobs, Keys.id(job.id))
        if let progress = db.progress { try txn.delete(progress, Keys.id(job.id)) }
        for kind in IndexEntry.kinds { try removeEntry(kind, of: job) }
        count(job, -1)
        try record(recorded(event, job), of: job.id)
        changes.append(JobChange(kind: .deleted, id: job.id, job: nil, previousState: job.state))
    }

    /// Records an event in the store's history, at the next position after the history's last
    /// (the job's own timeline is written with its record: ``putRecord(_:event:inserting:options:)``).
    /// The event of `kind` that a change leaving `job` as it is records, with this transaction's actor.
    func recorded(_ kind: JobEvent.Kind, _ job: Job) -> JobEvent {
        JobEvent.recording(kind, job, at: now, actor: actor)
    }

    /// Records a queue event (paused, resumed, limited, unlimited) in the history, under no job.
    func recordQueueEvent(_ kind: JobEvent.Kind, _ description: String) throws {
        try record(JobEvent.queue(kind, description, at: now, actor: actor), of: .none)
    }

    func record(_ event: JobEvent, of id: JobID) throws {
        guard let events = db.events else {
            throw JobStoreError(.newerFormat, "this store has no history database", hint: "Open it writable once to upgrade it")
        }
        let position = try nextHistoryPosition(events)
        // Key, then value, in the scratch bytes (the record put before copied them to its page).
        let bytes = scratch(EventFormat.historyKeySize + EventFormat.historyValueSize(of: event))
        let keyLength = EventFormat.writeHistoryKey(position, into: bytes)
        let value = UnsafeMutableRawBufferPointer(rebasing: bytes[keyLength...])
        let valueLength = EventFormat.writeHistoryValue(id, event, into: value)
        try txn.put(
            events.history, rawKey: UnsafeRawBufferPointer(rebasing: bytes[..<keyLength]),
            rawValue: UnsafeRawBufferPointer(rebasing: value[..<valueLength]), options: .append)
    }

    /// Puts the record of `job` with `event` appended to the timeline its stored record holds
    /// (none for an insert): the one ``job(_:)`` just read, when no write came between.
    func putRecord(_ job: Job, event: JobEvent, inserting: Bool, options: PutOptions = []) throws {
        if inserting {
            try putRecord(job, event: event, appendingTo: nil, options: options)
        } else if let lastRead, lastRead.id == job.id, lastRead.writeCount == txn.writeCount {
            try putRecord(job, event: event, appendingTo: lastRead.timeline, options: options)
        } else {
            // Copied out: no write while bytes borrowed from the map are in scope.
            let stored: [UInt8]? = try job.id.withBytes { key in
                try txn.withValue(db.jobs, rawKey: key) { record in
                    try record.flatMap { try RecordFormat.timeline($0, id: job.id) }.map { Array($0) }
                }
            }
            if let stored {
                try stored.withUnsafeBytes { try putRecord(job, event: event, appendingTo: $0, options: options) }
            } else {
                try putRecord(job, event: event, appendingTo: nil, options: options)
            }
        }
    }

    /// Encodes the record — id, then the new timeline, then the record with it — into
    /// ``scratch`` and puts it. No closure holds `job` here: one did, and the optimiser copied
    /// the whole `Job` for it (a retain and a release per text and array of the job).
    func putRecord(_ job: Job, event: JobEvent, appendingTo stored: UnsafeRawBufferPointer?, options: PutOptions) throws {
        let timeline = try EventFormat.TimelineAppend(event, to: stored, id: job.id)
        let recordSize = RecordFormat.encodedSize(job, timelineCount: timeline.size)
        let bytes = scratch(16 + timeline.size + recordSize)
        job.id.store(into: bytes, at: 0)
        let timelineBytes = UnsafeMutableRawBufferPointer(rebasing: bytes[16..<16 + timeline.size])
        _ = timeline.write(into: timelineBytes)
        let record = UnsafeMutableRawBufferPointer(rebasing: bytes[(16 + timeline.size)...])
        let length = RecordFormat.write(job, timeline: UnsafeRawBufferPointer(timelineBytes), into: record)
        let key = UnsafeRawBufferPointer(rebasing: bytes[..<16]), value = UnsafeRawBufferPointer(rebasing: record[..<length])
        if options.contains(.noOverwrite) {
            // A new job: its id (time-ordered) is usually past the last.
            if try txn.putAppendingIfLast(db.jobs, rawKey: key, rawValue: value, options: options) { appendedPuts += 1 }
        } else {
            try txn.put(db.jobs, rawKey: key, rawValue: value, options: options)
        }
    }

    /// At least `count` bytes of ``scratchBytes``, grown (and its bytes forgotten) when short.
    private func scratch(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if scratchBytes.count < count {
            scratchBytes.deallocate()
            scratchBytes = .allocate(byteCount: max(count, 2 * scratchBytes.count, 1024), alignment: 8)
        }
        return scratchBytes
    }

    /// The history position after the last one given out: the transaction's time, or — when
    /// the history already holds that time or a later one (the clock went back) — the last
    /// position's time with the next sequence number. So positions only grow, in commit order.
    private func nextHistoryPosition(_ events: EventDatabases) throws -> HistoryPosition {
        let last = try historyClock ?? events.lastPosition(in: txn)
        var next = HistoryPosition(time: now, sequence: 0)
        if let last, last.time >= now {
            next = last.sequence == .max
                ? HistoryPosition(time: last.time.adding(.microseconds(1)), sequence: 0)
                : HistoryPosition(time: last.time, sequence: last.sequence + 1)
        }
        historyClock = next
        return next
    }

    /// Puts `job`'s entry in the `kind` index, if it has one there.
    func putEntry(_ kind: IndexEntry.Kind, of job: Job) throws {
        try IndexEntry.withKey(kind, of: job) { key in
            if let key { try putEntry(kind, key: key, of: job) }
        }
    }

    func putEntry(_ kind: IndexEntry.Kind, key: UnsafeRawBufferPointer, of job: Job) throws {
        if kind == .unique {
            try job.id.withBytes { id in try txn.put(db.unique, rawKey: key, rawValue: id) }
        } else {
            let index = try writableIndex(kind), empty = UnsafeRawBufferPointer(start: nil, count: 0)
            if kind == .created {
                // Put once, at the insert; creation times grow, so usually past the last.
                if try txn.putAppendingIfLast(index, rawKey: key, rawValue: empty) { appendedPuts += 1 }
            } else {
                try txn.put(index, rawKey: key, rawValue: empty)
            }
        }
    }

    /// Removes `job`'s entry from the `kind` index, if it has one there.
    private func removeEntry(_ kind: IndexEntry.Kind, of job: Job) throws {
        try IndexEntry.withKey(kind, of: job) { key in
            if let key { try removeEntry(kind, key: key) }
        }
    }

    private func removeEntry(_ kind: IndexEntry.Kind, key: UnsafeRawBufferPointer) throws {
        if kind == .unique {
            try txn.delete(db.unique, rawKey: key)
        } else {
            try txn.delete(try writableIndex(kind), rawKey: key)
        }
    }

    /// The key-only index of `kind` (not `.unique`); a writable store has every index (it was
    /// upgraded on open).
    func writableIndex(_ kind: IndexEntry.Kind) throws -> Database<BytesCodec, EmptyCodec> {
        guard let index = db.keyOnlyIndex(kind) else {
            throw JobStoreError(.newerFormat, "this store has no \(kind) index", hint: "Open it writable once to upgrade it")
        }
        return index
    }

    func countPipeline(_ state: PipelineState, _ delta: Int64) {
        counterDeltas.pipelines[state, default: 0] += delta
    }

    func count(_ job: Job, _ delta: Int64) {
        counterDeltas.add(delta, job.state, queue: job.queue)
    }

    /// Writes the counters changed by this transaction (once per counter, however many jobs changed it).
    func flushCounters() throws {
        try counterDeltas.forEachChange { key, delta in try Counters.add(delta, txn, db.meta, rawKey: key) }
        counterDeltas = CounterDeltas()
    }
}
