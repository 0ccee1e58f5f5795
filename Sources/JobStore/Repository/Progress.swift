internal import LMDB

extension JobTransaction {
    /// Stores `reports`, each over its job's last (a report of a job that does not exist is
    /// dropped); they reach the change feed as `.progress` once committed. The job's record is
    /// not read or rewritten: one put in `progress` per report.
    ///
    /// - Throws: `.newerFormat` in a store whose format predates progress (a rehearsal of one
    ///   not yet upgraded).
    public func storeProgress(_ reports: [ProgressReport]) throws {
        guard let database = db.progress else {
            throw JobStoreError(.newerFormat, "this store predates format 6 and has no progress database", hint: "Open it writable once to upgrade it")
        }
        for report in reports {
            guard try db.hasJob(report.id, in: txn) else { continue }
            try txn.put(database, Keys.id(report.id), ProgressFormat.encode(report.progress))
            progressReports.append(report)
        }
    }

    /// The progress the job's handler last reported, as this transaction sees it.
    public func progress(of id: JobID) throws -> JobProgress? {
        try db.progress(of: id, in: txn)
    }
}

extension Databases {
    /// The progress of job `id` as `txn` sees it, decoded from the page; `nil` for none (or a
    /// store without the progress database: older than format 6, opened read-only).
    func progress(of id: JobID, in txn: Transaction) throws -> JobProgress? {
        guard let progress else { return nil }
        return try txn.withValue(progress, Keys.id(id)) { bytes in try bytes.map { try ProgressFormat.decode($0, id: id) } }
    }
}

extension JobRepository {
    /// See `JobCore/SchedulerBackend/storeProgress(_:)`: one write transaction (group commit).
    public func storeProgress(_ reports: [ProgressReport]) async throws {
        guard !reports.isEmpty else { return }
        try await write { try $0.storeProgress(reports) }
    }

    /// See `JobCore/JobStoreBackend/progress(of:)`: one read, never cached (reports change
    /// while a job runs; another process's reach this one at once).
    public func progress(of id: JobID) throws -> JobProgress? {
        try reading { txn in try db.progress(of: id, in: txn) }
    }

    /// See `JobCore/JobStoreBackend/progress(of:)`.
    public func progress(of id: JobID) async throws -> JobProgress? {
        try reading { txn in try db.progress(of: id, in: txn) }
    }
}
