import LMDB

/// One inconsistency found by ``JobRepository/verify()``.
public struct VerificationProblem: Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A record cannot be decoded (or is of a newer format).
        case badRecord
        /// A record lacks one of its index entries.
        case missingIndexEntry
        /// An index entry points to no record, or to a record that does not call for it.
        case strayIndexEntry
        /// A counter differs from a recount of the records.
        case wrongCounter
        /// The store's format version is missing or unreadable.
        case badFormatVersion
        /// A pipeline's record, steps or rolled-up state disagree with its steps' jobs.
        case badPipeline
    }
    /// What kind of problem.
    public var kind: Kind
    /// The job involved, if one is.
    public var jobID: JobID?
    /// The pipeline involved, if one is.
    public var pipelineID: PipelineID?
    /// What exactly is wrong.
    public var message: String

    /// A problem.
    public init(kind: Kind, jobID: JobID? = nil, pipelineID: PipelineID? = nil, message: String) {
        self.kind = kind
        self.jobID = jobID
        self.pipelineID = pipelineID
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

extension JobRepository {
    /// Checks the whole store in one snapshot: every record decodes; every record has exactly its
    /// index entries (``IndexEntry/entries(of:)``, the same function writes use) and every index
    /// entry belongs to a record; every counter equals a recount; every pipeline agrees with its
    /// steps' jobs (see ``verifyPipelines(_:stepJobs:counters:)``). Returns every problem found
    /// (empty when the store is consistent).
    ///
    /// Holds one read transaction for its duration (a consistent snapshot), so on a live store
    /// the file may grow while it runs.
    public func verify() throws -> [VerificationProblem] {
        try reading { txn in
            var problems: [VerificationProblem] = []
            var counters: [String: Int64] = [:]
            var stepJobs: [JobID: (step: PipelineReference, state: JobState)] = [:]

            if try txn.get(db.meta, MetaKey.formatVersion)?.count != 4 {
                problems.append(VerificationProblem(kind: .badFormatVersion, jobID: nil, message: "meta has no 4-byte format_version"))
            }

            // Records → their index entries.
            try txn.forEach(db.jobs) { key, value in
                guard let id = JobID(bytes: key) else {
                    problems.append(VerificationProblem(kind: .badRecord, jobID: nil, message: "a jobs key of \(key.count) bytes is not an id"))
                    return true
                }
                let job: Job
                do {
                    job = try RecordFormat.decode(value, id: id)
                } catch {
                    problems.append(VerificationProblem(kind: .badRecord, jobID: id, message: "\(error)"))
                    return true
                }
                counters[MetaKey.stateCounter(job.state), default: 0] += 1
                counters[MetaKey.queueCounter(job.queue, job.state), default: 0] += 1
                if let step = job.pipeline { stepJobs[id] = (step, job.state) }
                for entry in IndexEntry.entries(of: job) where try !has(entry, txn) {
                    problems.append(VerificationProblem(
                        kind: .missingIndexEntry, jobID: id, message: "job \(id) (\(job.state)) lacks its \(db.name(of: entry)) entry"))
                }
                return true
            }

            // Index entries → records that call for them.
            for (database, makeEntry) in db.keyOnlyIndexes {
                let name = database.name
                try txn.forEach(database) { key, _ in
                    let id: JobID
                    do {
                        id = try Keys.trailingID(key, index: name)
                    } catch {
                        problems.append(VerificationProblem(kind: .strayIndexEntry, jobID: nil, message: "\(error)"))
                        return true
                    }
                    problems += try strayCheck(makeEntry(Array(key)), id: id, name: name, txn)
                    return true
                }
            }
            try txn.forEach(db.unique) { key, value in
                guard let id = JobID(bytes: value) else {
                    problems.append(VerificationProblem(kind: .strayIndexEntry, jobID: nil, message: "\(db.unique.name) holds a \(value.count)-byte value"))
                    return true
                }
                problems += try strayCheck(.unique(key: Array(key), id: Array(value)), id: id, name: db.unique.name, txn)
                return true
            }

            problems += try verifyPipelines(txn, stepJobs: stepJobs, counters: &counters)

            // Counters.
            var stored: [String: Int64] = [:]
            try txn.forEach(db.meta, prefix: Array(MetaKey.counterPrefix.utf8)) { key, value in
                let name = String(decoding: key, as: UTF8.self)
                do {
                    stored[name] = try Counters.decode(value, key: name)
                } catch {
                    problems.append(VerificationProblem(kind: .wrongCounter, jobID: nil, message: "\(error)"))
                }
                return true
            }
            for name in Set(stored.keys).union(counters.keys).sorted() where stored[name, default: 0] != counters[name, default: 0] {
                problems.append(VerificationProblem(
                    kind: .wrongCounter, jobID: nil,
                    message: "\(name) is \(stored[name, default: 0]), a recount finds \(counters[name, default: 0])"))
            }
            return problems
        }
    }

    private func strayCheck(_ entry: IndexEntry, id: JobID, name: String, _ txn: Transaction) throws -> [VerificationProblem] {
        guard let job = try? job(id, in: txn) else {
            return [VerificationProblem(kind: .strayIndexEntry, jobID: id, message: "\(name) lists job \(id), which has no readable record")]
        }
        if !IndexEntry.entries(of: job).contains(entry) {
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
