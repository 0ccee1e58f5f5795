internal import LMDB

/// The open handles of a store's databases.
struct Databases: Sendable {
    let meta: Database<StringCodec, BytesCodec>
    let jobs: Database<BytesCodec, BytesCodec>
    let stateCreated: Database<BytesCodec, EmptyCodec>
    let created: Database<BytesCodec, EmptyCodec>
    let ready: Database<BytesCodec, EmptyCodec>
    let readyAny: Database<BytesCodec, EmptyCodec>
    let lease: Database<BytesCodec, EmptyCodec>
    let unique: Database<BytesCodec, BytesCodec>
    /// `idx.finished`; `nil` only for a format-1 store opened read-only.
    let finished: Database<BytesCodec, EmptyCodec>?
    /// The pipeline databases; `nil` only for a format-1 store opened read-only (it has none,
    /// and cannot be upgraded without writing).
    let pipeline: PipelineDatabases?
    /// `history`; `nil` only for a store of format 1 or 2 opened read-only.
    let events: EventDatabases?
    /// `progress`; `nil` only for a store older than format 6 opened read-only or for a
    /// rehearsal (which may not upgrade it).
    let progress: Database<BytesCodec, BytesCodec>?
    /// `workers`; `nil` only for a store older than format 7 opened read-only or for a rehearsal.
    let workers: Database<BytesCodec, BytesCodec>?

    init(_ env: Environment) throws {
        meta = try env.database(Schema.meta)
        jobs = try env.database(Schema.jobs)
        stateCreated = try env.database(Schema.stateCreated)
        created = try env.database(Schema.created)
        ready = try env.database(Schema.ready)
        readyAny = try env.database(Schema.readyAny)
        lease = try env.database(Schema.lease)
        unique = try env.database(Schema.unique)
        finished = try? env.database(Schema.finished)
        pipeline = try? PipelineDatabases(env)
        events = try? EventDatabases(env)
        progress = try? env.database(Schema.progress)
        workers = try? env.database(Schema.workers)
    }

    /// Whether `txn` sees a record of job `id`, checked in place (no copy of the record, which
    /// may hold a payload of up to 1 MiB).
    func hasJob(_ id: JobID, in txn: Transaction) throws -> Bool {
        try txn.withValue(jobs, Keys.id(id)) { $0 != nil }
    }

    /// The job with `id` as `txn` sees it, or `nil`: decoded straight from the mapped page,
    /// the id's bytes the key (no copy). `reading` sees the record's view first.
    func job(_ id: JobID, in txn: Transaction, reading: (borrowing JobRecordView) -> Void = { _ in }) throws -> Job? {
        try id.withBytes { key in
            try txn.withValue(jobs, rawKey: key) { bytes in
                guard let bytes else { return nil }
                let view = try JobRecordView(bytes, id: id)
                reading(view)
                return view.job()
            }
        }
    }

    /// The pipeline databases, which every writable store has.
    func pipelines() throws -> PipelineDatabases {
        guard let pipeline else {
            throw JobStoreError(.newerFormat, "this store is of format 1 and open read-only: it has no pipeline databases", hint: "Open it writable once to upgrade it")
        }
        return pipeline
    }
}

/// The open handles of the pipeline databases (format 2).
struct PipelineDatabases: Sendable {
    let records: Database<BytesCodec, BytesCodec>
    let steps: Database<BytesCodec, BytesCodec>
    let stateCreated: Database<BytesCodec, EmptyCodec>
    let finished: Database<BytesCodec, EmptyCodec>

    /// Every index entry a pipeline has — its state · createdAt entry, and while finished its
    /// state · finishedAt entry — in one place: writes and `verify()` both use it.
    func entries(of pipeline: Pipeline) -> [(database: Database<BytesCodec, EmptyCodec>, key: [UInt8])] {
        var entries = [(stateCreated, Keys.pipelineStateCreated(pipeline.state, pipeline.createdAt, pipeline.id))]
        if let finishedAt = pipeline.finishedAt { entries.append((finished, Keys.pipelineFinished(pipeline.state, finishedAt, pipeline.id))) }
        return entries
    }

    init(_ env: Environment) throws {
        records = try env.database(Schema.pipelines)
        steps = try env.database(Schema.pipelineSteps)
        stateCreated = try env.database(Schema.pipelineStateCreated)
        finished = try env.database(Schema.pipelineFinished)
    }
}

/// The open handle of the history database (format 3).
struct EventDatabases: Sendable {
    /// `history`: every event in commit order.
    let history: Database<BytesCodec, BytesCodec>

    init(_ env: Environment) throws {
        history = try env.database(Schema.history)
    }

    /// The position of the history's newest event in `txn`, or `nil` when it is empty.
    func lastPosition(in txn: Transaction) throws -> HistoryPosition? {
        try txn.withCursor(history) { cursor in
            try cursor.last() ? try cursor.withCurrent { key, _ in try EventFormat.position(fromKey: key) } : nil
        }
    }

    /// The keys of the events recorded before `cutoff` (by the history clock).
    static func keys(before cutoff: Timestamp) -> KeyRange<[UInt8]> {
        .upTo(EventFormat.historyKey(HistoryPosition(time: cutoff, sequence: 0)))
    }
}

extension Databases {
    /// The key-only index database holding `entry` and its key; `nil` for a unique-key entry,
    /// the one index whose value (the job id) is not empty, and for a finished entry in a
    /// format-1 store opened read-only (it has no `idx.finished`).
    func location(of entry: IndexEntry) -> (database: Database<BytesCodec, EmptyCodec>, key: [UInt8])? {
        keyOnlyIndex(entry.kind).map { ($0, entry.key) }
    }

    /// The key-only index of `kind`; `nil` for `.unique` (its values are ids) and for
    /// `.finished` in a format-1 store opened read-only.
    func keyOnlyIndex(_ kind: IndexEntry.Kind) -> Database<BytesCodec, EmptyCodec>? {
        switch kind {
        case .stateCreated: stateCreated
        case .created: created
        case .ready: ready
        case .readyAny: readyAny
        case .lease: lease
        case .finished: finished
        case .unique: nil
        }
    }

    /// Every key-only index, with how to rebuild an entry from one of its keys.
    var keyOnlyIndexes: [(database: Database<BytesCodec, EmptyCodec>, entry: ([UInt8]) -> IndexEntry)] {
        IndexEntry.kinds.compactMap { kind in keyOnlyIndex(kind).map { (database: $0, entry: { IndexEntry(kind, key: $0) }) } }
    }

    /// The job counters (per state, and per queue and state, by meta key) recounted from the
    /// records as `txn` sees them, reading only each record's state and queue in place (a
    /// tenth of a full decode). `verify()` compares them; `deleteDamaged` writes them.
    func recountJobCounters(in txn: Transaction) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        try txn.forEach(jobs) { key, value in
            if let id = JobID(bytes: key), let (state, queue) = try? RecordFormat.stateAndQueue(value, id: id) {
                counts[MetaKey.stateCounter(state), default: 0] += 1
                counts[MetaKey.queueCounter(queue, state), default: 0] += 1
            }
            return true
        }
        return counts
    }

    /// The name of the database holding `entry`.
    func name(of entry: IndexEntry) -> String {
        switch entry {
        case .unique: unique.name
        case .finished: Schema.finished.name
        default: location(of: entry)?.database.name ?? "?"
        }
    }
}
