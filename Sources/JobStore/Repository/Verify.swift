internal import LMDB

extension JobRepository {
    /// Checks the whole store: first the structure of every page of LMDB's file (a damaged page
    /// is reported as `VerificationProblem/Kind/badPage`, and nothing else is walked); then
    /// every record decodes; every record has exactly its index entries
    /// (`IndexEntry/entries(of:)`, from the key writer writes use) and every index entry belongs
    /// to a record; every counter equals a recount; every pipeline agrees with its steps' jobs
    /// (see `verifyPipelines(_:counters:)`); every job's timeline and every history entry
    /// reads, and each timeline ends in the state of its job; every paused queue, rate
    /// limit and schedule in `meta` reads. Returns every problem found (empty when the store is
    /// consistent).
    ///
    /// Safe on a live store: records and indexes are walked in chunks of `chunkSize`, each in its
    /// own short read transaction, so no snapshot is held long (a long one makes the file grow
    /// under writes). Whatever looks wrong in a chunk — a change may have landed between two
    /// chunks — is checked again in a fresh snapshot before it is reported; counters are recounted
    /// in one snapshot only when the chunked recount disagrees with them.
    public func verify(chunkSize: Int = 10_000) throws -> [VerificationProblem] {
        try JobStoreError.requirePositive(chunkSize, "chunkSize")
        // First the file's page structure: LMDB trusts its pages, and a damaged one would crash
        // the walk below instead of being reported.
        let pages = try wrappingErrors { try environment.checkPages() }
        if !pages.isEmpty { return pages.map { VerificationProblem(kind: .badPage, message: $0) } }
        var problems: [VerificationProblem] = []
        var counters: [String: Int64] = [:]
        var suspectJobs = Set<JobID>()
        var suspectEntries: [(entry: IndexEntry, id: JobID, name: String)] = []

        // Records → their index entries (and, for a pipeline step, its step record).
        try forEachChunk(of: db.jobs, chunkSize: chunkSize) { txn, key, value in
            guard let id = JobID(bytes: key) else {
                problems.append(VerificationProblem(kind: .badRecord, message: "a jobs key of \(key.count) bytes is not an id"))
                return
            }
            guard let job = try? RecordFormat.decode(value, id: id) else {
                suspectJobs.insert(id)
                return
            }
            counters[MetaKey.stateCounter(job.state), default: 0] += 1
            counters[MetaKey.queueCounter(job.queue, job.state), default: 0] += 1
            if try !recordProblems(job, txn).isEmpty { suspectJobs.insert(id) }
            problems += timelineProblems(value, job)
        }

        // Index entries → records that call for them.
        var indexes = db.keyOnlyIndexes.map { index in (index.database, index.entry) }
        let unique = db.unique
        for (database, makeEntry) in indexes {
            let name = database.name
            try forEachChunk(of: database, chunkSize: chunkSize) { txn, key, _ in
                guard let id = try? Keys.trailingID(key, index: name) else {
                    problems.append(VerificationProblem(kind: .strayIndexEntry, message: "a key of \(key.count) bytes in \(name) is too short to end with a job id"))
                    return
                }
                let entry = makeEntry(Array(key))
                if try !strayCheck(entry, id: id, name: name, txn).isEmpty { suspectEntries.append((entry, id, name)) }
            }
        }
        indexes = []
        try forEachChunk(of: unique, chunkSize: chunkSize) { txn, key, value in
            guard let id = JobID(bytes: value) else {
                problems.append(VerificationProblem(kind: .strayIndexEntry, message: "\(unique.name) holds a \(value.count)-byte value"))
                return
            }
            let entry = IndexEntry.unique(key: Array(key), id: Array(value))
            if try !strayCheck(entry, id: id, name: unique.name, txn).isEmpty { suspectEntries.append((entry, id, unique.name)) }
        }

        // Progress entries: each readable, and of a job there is (read in the entry's snapshot:
        // a job's progress is deleted with it).
        if let progress = db.progress {
            try forEachChunk(of: progress, chunkSize: chunkSize) { txn, key, value in
                guard let id = JobID(bytes: key) else {
                    problems.append(VerificationProblem(kind: .strayIndexEntry, message: "a progress key of \(key.count) bytes is not a job id"))
                    return
                }
                do {
                    _ = try ProgressFormat.decode(value, id: id)
                } catch {
                    problems.append(VerificationProblem(kind: .badRecord, jobID: id, message: "\(error)"))
                }
                if try !db.hasJob(id, in: txn) {
                    problems.append(VerificationProblem(kind: .strayIndexEntry, jobID: id, message: "progress holds a report of job \(id), which does not exist"))
                }
            }
        }

        // Heartbeats: each key a scheduler id, each record readable.
        if let workers = db.workers {
            try forEachChunk(of: workers, chunkSize: chunkSize) { _, key, value in
                do {
                    _ = try WorkerFormat.decode(value, id: try Keys.owner(key))
                } catch {
                    problems.append(VerificationProblem(kind: .badRecord, message: "\(error)"))
                }
            }
        }

        // The suspects, again, in one fresh snapshot: what is still wrong is reported.
        try reading { txn in
            for id in suspectJobs.sorted() {
                guard let bytes = try txn.get(db.jobs, Keys.id(id)) else { continue }  // deleted meanwhile
                do {
                    let job = try bytes.withUnsafeBytes { try RecordFormat.decode($0, id: id) }
                    problems += try recordProblems(job, txn)
                } catch {
                    problems.append(VerificationProblem(kind: .badRecord, jobID: id, message: "\(error)"))
                }
            }
            for (entry, id, name) in suspectEntries where try has(entry, txn) {
                problems += try strayCheck(entry, id: id, name: name, txn)
            }
        }

        problems += try verifyHistory(chunkSize: chunkSize)

        // Format version, pipelines and counters: one snapshot (pipelines are few; counters are
        // recounted from the records in it only if the chunked recount disagrees).
        problems += try reading { txn in
            var problems: [VerificationProblem] = []
            if try txn.get(db.meta, MetaKey.formatVersion)?.count != 4 {
                problems.append(VerificationProblem(kind: .badFormatVersion, message: "meta has no 4-byte format_version"))
            }
            problems += try controlProblems(txn)
            var pipelineCounters: [String: Int64] = [:]
            problems += try verifyPipelines(txn, counters: &pipelineCounters)
            var stored: [String: Int64] = [:]
            try txn.forEach(db.meta, prefix: Array(MetaKey.counterPrefix.utf8)) { key, value in
                let name = String(decoding: key, as: UTF8.self)
                do {
                    stored[name] = try Counters.decode(value, key: name)
                } catch {
                    problems.append(VerificationProblem(kind: .wrongCounter, message: "\(error)"))
                }
                return true
            }
            var recount = counters.merging(pipelineCounters) { a, _ in a }
            if Set(stored.keys).union(recount.keys).contains(where: { stored[$0, default: 0] != recount[$0, default: 0] }) {
                // Jobs may have changed between chunks: recount them in this snapshot (a short one:
                // only each record's state and queue are read).
                recount = try db.recountJobCounters(in: txn).merging(pipelineCounters) { a, _ in a }
            }
            for name in Set(stored.keys).union(recount.keys).sorted() where stored[name, default: 0] != recount[name, default: 0] {
                problems.append(VerificationProblem(
                    kind: .wrongCounter, message: "\(name) is \(stored[name, default: 0]), a recount finds \(recount[name, default: 0])"))
            }
            return problems
        }
        return problems
    }

    /// The queue controls and schedules in `meta` that cannot be read: each paused-queue time,
    /// rate limit and schedule record on its own, so one bad entry hides no other.
    private func controlProblems(_ txn: Transaction) throws -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        let checks: [(prefix: String, decode: (String, UnsafeRawBufferPointer) throws -> Void)] = [
            (MetaKey.pausedQueuePrefix, { name, value in _ = try Counters.decode(value, key: MetaKey.pausedQueue(name)) }),
            (MetaKey.rateLimitPrefix, { name, value in _ = try RateLimit.decode(value, queue: name) }),
            (MetaKey.schedulePrefix, { name, value in _ = try ScheduleFormat.decode(value, name: name) }),
        ]
        for (prefix, decode) in checks {
            try txn.forEach(db.meta, prefix: Array(prefix.utf8)) { key, value in
                do {
                    try decode(String(decoding: key.dropFirst(prefix.utf8.count), as: UTF8.self), value)
                } catch {
                    problems.append(VerificationProblem(kind: .badRecord, message: "meta \(String(decoding: key, as: UTF8.self)): \(error)"))
                }
                return true
            }
        }
        return problems
    }

    /// What is wrong with a decoded record, in `txn`: a missing index entry, or a pipeline step
    /// whose step record does not run it.
    private func recordProblems(_ job: Job, _ txn: Transaction) throws -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        for entry in try IndexEntry.entries(of: job) where try !has(entry, txn) {
            problems.append(VerificationProblem(
                kind: .missingIndexEntry, jobID: job.id, message: "job \(job.id) (\(job.state)) lacks its \(db.name(of: entry)) entry"))
        }
        if let step = job.pipeline {
            let runsIt = try db.pipeline.map { tables in
                try txn.withValue(tables.steps, Keys.step(step.pipeline, Int(step.step))) { bytes in
                    try bytes.map { try PipelineFormat.decodeStep($0, pipeline: step.pipeline, index: Int(step.step)).jobID == job.id } ?? false
                }
            } ?? false
            if !runsIt {
                problems.append(VerificationProblem(
                    kind: .badPipeline, jobID: job.id, pipelineID: step.pipeline,
                    message: "job \(job.id) says it is step \(step.step) of pipeline \(step.pipeline), which has no such step"))
            }
        }
        return problems
    }

    /// Visits every entry of `database` in chunks of `chunkSize`, each chunk in its own read
    /// transaction (resuming after the last key seen), so no snapshot is held long.
    func forEachChunk<Value>(
        of database: Database<BytesCodec, Value>, chunkSize: Int,
        _ body: (Transaction, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var after: [UInt8]?
        while true {
            var seen = 0
            try reading { txn in
                try txn.withCursor(database) { cursor in
                    var found: Bool
                    if let last = after {
                        found = try cursor.seek(atLeast: last)
                        if found, try cursor.withCurrent({ key, _ in key.elementsEqual(last) }) { found = try cursor.next() }
                    } else {
                        found = try cursor.first()
                    }
                    while found && seen < chunkSize {
                        try cursor.withCurrent { key, value in
                            try body(txn, key, value)
                            after = Array(key)
                        }
                        seen += 1
                        found = try cursor.next()
                    }
                }
            }
            if seen < chunkSize { return }
        }
    }

    private func strayCheck(_ entry: IndexEntry, id: JobID, name: String, _ txn: Transaction) throws -> [VerificationProblem] {
        guard let job = try? job(id, in: txn) else {
            return [VerificationProblem(kind: .strayIndexEntry, jobID: id, message: "\(name) lists job \(id), which has no readable record")]
        }
        if try !IndexEntry.entries(of: job).contains(entry) {
            return [VerificationProblem(
                kind: .strayIndexEntry, jobID: id, message: "\(name) has an entry for job \(id) (\(job.state)) that its record does not call for")]
        }
        return []
    }

    private func has(_ entry: IndexEntry, _ txn: Transaction) throws -> Bool {
        switch entry {
        case .unique(let key, let id):
            return try txn.get(db.unique, key) == id
        default:
            // No location: a format-1 store read-only, which has no idx.finished yet.
            guard let (database, key) = db.location(of: entry) else { return true }
            return try txn.contains(database, key)
        }
    }
}
