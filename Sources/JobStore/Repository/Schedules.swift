internal import LMDB

extension JobTransaction {
    /// The registration of schedule `name`, or `nil`.
    public func schedule(_ name: String) throws -> ScheduleRecord? {
        try txn.withValue(db.meta, MetaKey.schedule(name)) { bytes in try bytes.map { try ScheduleFormat.decode($0, name: name) } }
    }

    /// Registers (or updates) a schedule: its timing, job, policy and next tick; the last tick
    /// already recorded in the store is kept. Returns the stored record.
    @discardableResult
    public func register(_ schedule: ScheduleRecord) throws -> ScheduleRecord {
        try schedule.validate()
        var record = schedule
        record.lastTick = try self.schedule(schedule.name)?.lastTick ?? schedule.lastTick
        record.updatedAt = now
        try txn.put(db.meta, MetaKey.schedule(schedule.name), ScheduleFormat.encode(record))
        return record
    }

    /// Enqueues `job` for `tick` of schedule `name` — unless a job was already enqueued for this
    /// tick or a later one (by this or another process: the check and the insert are one
    /// transaction, so each tick gets exactly one job) — and records `tick` as the last and
    /// `next` as the next. Returns the job, or `nil` when the tick was already taken.
    ///
    /// - Throws: `.notFound` for a schedule that is not registered.
    public func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) throws -> Job? {
        guard var record = try schedule(name) else { throw JobStoreError.notFound(schedule: name) }
        if let last = record.lastTick, last >= tick { return nil }
        let inserted = try insert(job)
        record.lastTick = tick
        record.nextTick = next
        record.updatedAt = now
        try txn.put(db.meta, MetaKey.schedule(name), ScheduleFormat.encode(record))
        return inserted
    }

    /// Enqueues the job of schedule `name` to run at once; its ticks go on as before (see
    /// `JobCore/AdministrableStore/runNow(schedule:actor:dryRun:)`).
    public func runNow(schedule name: String) throws -> Job {
        guard let record = try schedule(name) else { throw JobStoreError.notFound(schedule: name) }
        return try insert(try record.jobToRunNow())
    }
}

extension JobRepository {
    /// Every registered schedule, by name.
    public func schedules() throws -> [ScheduleRecord] {
        try reading { txn in
            try db.metaEntries(txn, prefix: MetaKey.schedulePrefix) { name, value in try ScheduleFormat.decode(value, name: name) }
                .values.sorted { $0.name < $1.name }
        }
    }
}
