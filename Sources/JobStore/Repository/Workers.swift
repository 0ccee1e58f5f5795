internal import LMDB

extension JobRepository {
    /// See `JobCore/SchedulerBackend/recordWorker(_:)`: one put over its last, and the records
    /// of schedulers gone for an hour deleted, in one write transaction.
    public func recordWorker(_ worker: WorkerRecord) async throws {
        let record = worker.bounded()
        try await write { txn in try txn.recordWorker(record) }
    }

    /// See `JobCore/SchedulerBackend/removeWorker(_:)`.
    public func removeWorker(_ id: OwnerToken) async throws {
        try await write { txn in try txn.removeWorker(id) }
    }

    /// See `JobCore/InspectableStore/workers()`: every record of `workers`, decoded from the
    /// page, the longest-running scheduler first. Empty for a store older than format 7 opened
    /// read-only.
    public func workers() throws -> [WorkerRecord] { try readWorkers() }

    /// See `JobCore/InspectableStore/workers()`.
    public func workers() async throws -> [WorkerRecord] { try readWorkers() }

    private func readWorkers() throws -> [WorkerRecord] {
        guard let database = db.workers else { return [] }
        return try reading { txn in
            var workers: [WorkerRecord] = []
            try txn.forEach(database) { key, value in
                workers.append(try WorkerFormat.decode(value, id: try Keys.owner(key)))
                return true
            }
            return workers.sorted { ($0.startedAt, $0.id.high, $0.id.low) < ($1.startedAt, $1.id.high, $1.id.low) }
        }
    }
}

extension JobTransaction {
    /// Writes `worker`'s heartbeat (bounded: `WorkerRecord.bounded()`) and deletes the records
    /// of schedulers whose last beat is older than `WorkerRecord.forgottenAfter`.
    ///
    /// - Throws: `.newerFormat` in a store whose format predates heartbeats (a rehearsal of one
    ///   not yet upgraded).
    public func recordWorker(_ worker: WorkerRecord) throws {
        guard let database = db.workers else {
            throw JobStoreError(.newerFormat, "this store predates format 7 and has no workers database", hint: "Open it writable once to upgrade it")
        }
        let cutoff = worker.beatAt.microseconds - WorkerRecord.forgottenAfter.wholeMicroseconds
        var forgotten: [[UInt8]] = []
        try txn.forEach(database) { key, value in
            // The beat time is at a fixed offset (after version and pid); a damaged record is left to verify.
            if value.count >= 21, Int64(littleEndian: value.loadUnaligned(fromByteOffset: 13, as: Int64.self)) < cutoff {
                forgotten.append(Array(key))
            }
            return true
        }
        for key in forgotten { try txn.delete(database, key) }
        try txn.put(database, Keys.owner(worker.bounded().id), WorkerFormat.encode(worker.bounded()))
    }

    /// Deletes `id`'s heartbeat record (nothing when it has none).
    public func removeWorker(_ id: OwnerToken) throws {
        guard let database = db.workers else { return }
        try txn.delete(database, Keys.owner(id))
    }
}
