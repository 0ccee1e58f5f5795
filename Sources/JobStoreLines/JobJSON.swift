import Foundation
import JobStore
import JobStoreText

/// A job as JSON: the form of `jobs show --json`, `jobs list --json`, `export` and `import`.
/// Times are microseconds since the epoch, each with an ISO 8601 copy beside it (`…_iso`);
/// payload and result are base64, with a text copy when they are printable UTF-8. The copies are
/// for people: `import` reads the microseconds and the base64.
package struct JobJSON: Codable {
    package struct LeaseJSON: Codable {
        package var expiresAt: Int64
        package var expiresAtISO: String?
        package var owner: String

        enum CodingKeys: String, CodingKey {
            case owner
            case expiresAt = "expires_at", expiresAtISO = "expires_at_iso"
            case legacyExpiresAt = "expiresAt"  // exports of version 0.3 and before
        }

        package init(expiresAt: Timestamp, owner: String) {
            self.expiresAt = expiresAt.microseconds
            expiresAtISO = expiresAt.iso
            self.owner = owner
        }

        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            owner = try container.decode(String.self, forKey: .owner)
            expiresAt = try container.decodeIfPresent(Int64.self, forKey: .expiresAt) ?? container.decode(Int64.self, forKey: .legacyExpiresAt)
        }

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(owner, forKey: .owner)
            try container.encode(expiresAt, forKey: .expiresAt)
            try container.encodeIfPresent(expiresAtISO, forKey: .expiresAtISO)
        }
    }
    package struct ErrorJSON: Codable {
        package var message: String
        package var attempt: UInt16
        package var at: Int64
        package var atISO: String?

        enum CodingKeys: String, CodingKey {
            case message, attempt, at
            case atISO = "at_iso"
        }
    }
    package struct PipelineJSON: Codable {
        package var id: String
        package var step: UInt16
    }

    package var id: String
    package var name: String
    package var queue: String
    package var tenant: String?
    package var state: String
    package var priority: UInt8
    package var createdAt: Int64
    package var updatedAt: Int64
    package var runAt: Int64
    package var createdAtISO, updatedAtISO, runAtISO: String?
    package var attempts: UInt16
    package var maxAttempts: UInt16
    package var lease: LeaseJSON?
    package var errors: [ErrorJSON]
    package var uniqueKey: String?
    package var pipeline: PipelineJSON?
    package var payload: String
    package var payloadText: String?
    package var result: String?
    /// The job's own timeout, in µs (``JobCore/Job/timeout``).
    package var timeoutMicroseconds: Int64?
    /// The job's headers (absent for none).
    package var headers: [String: String]?
    /// The progress its handler last reported: in `jobs show --json` only (an export does not
    /// carry it; `import` ignores it).
    package var progress: JobProgress?
    /// The job's timeline: in `jobs show --json` and `export`; `import` puts it back before the
    /// `inserted` event it records.
    package var timeline: TimelineJSON?

    enum CodingKeys: String, CodingKey {
        case id, name, queue, tenant, state, priority, attempts, lease, errors, pipeline, payload, result, timeline
        case createdAt = "created_at", updatedAt = "updated_at", runAt = "run_at", maxAttempts = "max_attempts"
        case uniqueKey = "unique_key", payloadText = "payload_text", timeoutMicroseconds = "timeout_us", headers, progress
        case createdAtISO = "created_at_iso", updatedAtISO = "updated_at_iso", runAtISO = "run_at_iso"
    }

    package init(_ job: Job) {
        id = job.id.description
        name = job.name
        queue = job.queue
        tenant = job.tenant
        state = job.state.description
        priority = job.priority
        createdAt = job.createdAt.microseconds
        updatedAt = job.updatedAt.microseconds
        runAt = job.runAt.microseconds
        createdAtISO = job.createdAt.iso
        updatedAtISO = job.updatedAt.iso
        runAtISO = job.runAt.iso
        attempts = job.attempts
        maxAttempts = job.maxAttempts
        lease = job.lease.map { LeaseJSON(expiresAt: $0.expiresAt, owner: $0.owner.description) }
        errors = job.errors.map { ErrorJSON(message: $0.message, attempt: $0.attempt, at: $0.at.microseconds, atISO: $0.at.iso) }
        uniqueKey = job.uniqueKey
        pipeline = job.pipeline.map { PipelineJSON(id: $0.pipeline.description, step: $0.step) }
        payload = Data(job.payload).base64EncodedString()
        payloadText = Readable.text(job.payload)
        result = job.result.map { Data($0).base64EncodedString() }
        timeoutMicroseconds = job.timeout?.wholeMicroseconds
        headers = job.headers.isEmpty ? nil : job.headers
    }

    /// The job this JSON describes; throws a message naming the bad field.
    package func job() throws -> Job {
        guard let state = JobState(name: state) else {
            throw LineError("state '\(state)' is not one of \(JobState.allCases.map(\.description).joined(separator: ", "))")
        }
        guard let payloadBytes = Data(base64Encoded: payload) else { throw LineError("payload is not base64") }
        var resultBytes: [UInt8]?
        if let result {
            guard let bytes = Data(base64Encoded: result) else { throw LineError("result is not base64") }
            resultBytes = Array(bytes)
        }
        var parsedLease: Lease?
        if let lease {
            guard lease.owner.count == 32, let high = UInt64(lease.owner.prefix(16), radix: 16), let low = UInt64(lease.owner.suffix(16), radix: 16) else {
                throw LineError("lease owner '\(lease.owner)' is not 32 hex digits")
            }
            parsedLease = Lease(expiresAt: Timestamp(microseconds: lease.expiresAt), owner: OwnerToken(high: high, low: low))
        }
        return Job(
            id: try JobID(parsing: id), name: name, queue: queue, tenant: tenant, state: state, priority: priority,
            createdAt: Timestamp(microseconds: createdAt), updatedAt: Timestamp(microseconds: updatedAt),
            runAt: Timestamp(microseconds: runAt), attempts: attempts, maxAttempts: maxAttempts, lease: parsedLease,
            errors: errors.map { JobErrorRecord(message: $0.message, attempt: $0.attempt, at: Timestamp(microseconds: $0.at)) },
            uniqueKey: uniqueKey,
            pipeline: try pipeline.map { PipelineReference(pipeline: try PipelineID(parsing: $0.id), step: $0.step) },
            timeout: timeoutMicroseconds.map { .microseconds($0) }, headers: headers ?? [:],
            payload: Array(payloadBytes), result: resultBytes)
    }

    /// The exported timeline, checked, or `nil` when the line has none.
    package func pastTimeline() throws -> JobTimeline? {
        guard let timeline else { return nil }
        guard timeline.dropped >= 0 else { throw LineError("field 'timeline.dropped' is \(timeline.dropped); it must be 0 or more") }
        return JobTimeline(events: try timeline.events.enumerated().map { index, event in
            do { return try event.event() } catch let error as LineError { throw LineError("timeline event \(index): \(error)") }
        }, dropped: timeline.dropped)
    }
}

