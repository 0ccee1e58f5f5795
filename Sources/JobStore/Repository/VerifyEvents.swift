import LMDB

extension JobRepository {
    /// Checks the event databases (format 3), in chunks like the rest of ``verify(chunkSize:)``:
    /// every timeline reads, belongs to a job, and ends with an event in the job's state (each
    /// change records one); every history entry reads. A timeline and its job are read in the
    /// same snapshot, so a change between chunks cannot make them disagree.
    func verifyEvents(chunkSize: Int) throws -> [VerificationProblem] {
        guard let events = db.events else { return [] }
        var problems: [VerificationProblem] = []
        try forEachChunk(of: events.timelines, chunkSize: chunkSize) { txn, key, value in
            guard let id = JobID(bytes: key) else {
                problems.append(VerificationProblem(kind: .badEvent, message: "a \(Schema.jobEvents.name) key of \(key.count) bytes is not a job id"))
                return
            }
            let timeline: JobTimeline
            do {
                timeline = try EventFormat.decodeTimeline(value, id: id)
            } catch {
                problems.append(VerificationProblem(kind: .badEvent, jobID: id, message: "\(error)"))
                return
            }
            guard let state = try txn.withValue(db.jobs, Keys.id(id), { bytes in try bytes.map { try? RecordFormat.header($0, id: id).state } }) else {
                problems.append(VerificationProblem(kind: .badEvent, jobID: id, message: "\(Schema.jobEvents.name) holds a timeline of job \(id), which does not exist"))
                return
            }
            if let state, let last = timeline.events.last, last.state != state {
                problems.append(VerificationProblem(
                    kind: .badEvent, jobID: id,
                    message: "the timeline of job \(id) ends with \(last.kind) leaving it \(last.state), but the job is \(state)"))
            }
        }
        try forEachChunk(of: events.history, chunkSize: chunkSize) { _, key, value in
            do {
                _ = try EventFormat.decodeHistory(key: key, value: value)
            } catch {
                problems.append(VerificationProblem(kind: .badEvent, message: "\(error)"))
            }
        }
        return problems
    }
}
