internal import LMDB

extension JobRepository {
    /// What is wrong with a record's timeline (the end of a version-2 record): it does not
    /// read, or its last event did not leave the job in the state the record holds (each change
    /// records one). A record's bytes are one value of one snapshot, so no re-check is needed.
    func timelineProblems(_ bytes: UnsafeRawBufferPointer, _ job: Job) -> [VerificationProblem] {
        do {
            guard let block = try RecordFormat.timeline(bytes, id: job.id) else { return [] }
            let timeline = try EventFormat.decodeTimeline(block, id: job.id)
            if let last = timeline.events.last, last.state != job.state {
                return [VerificationProblem(
                    kind: .badEvent, jobID: job.id,
                    message: "the timeline of job \(job.id) ends with \(last.kind) leaving it \(last.state), but the job is \(job.state)")]
            }
            return []
        } catch {
            return [VerificationProblem(kind: .badEvent, jobID: job.id, message: "\(error)")]
        }
    }

    /// Checks that every entry of the store's history reads, in chunks like the rest of
    /// ``verify(chunkSize:)``.
    func verifyHistory(chunkSize: Int) throws -> [VerificationProblem] {
        guard let events = db.events else { return [] }
        var problems: [VerificationProblem] = []
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
