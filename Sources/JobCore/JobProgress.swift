/// How far a running job has come, as its handler last reported it
/// (`JobContext.reportProgress(_:_:)`): kept apart from the job's record, so a report does not
/// rewrite the job, and kept after the job ends (where a failed job stopped), until it is deleted.
public struct JobProgress: Sendable, Hashable, Codable {
    /// The share done, 0 … 1.
    public var fraction: Double
    /// What the handler is doing, if it said (at most ``maxMessageBytes`` bytes).
    public var message: String?
    /// The attempt that reported it (a retry starts from where its handler reports again).
    public var attempt: UInt16
    /// When it was reported.
    public var at: Timestamp

    /// The longest message kept, in UTF-8 bytes (longer ones are cut).
    public static let maxMessageBytes = 256

    /// A report: `fraction` clamped to 0 … 1 (not a number: 0), `message` cut to its limit (an
    /// empty one is none).
    public init(fraction: Double, message: String? = nil, attempt: UInt16, at: Timestamp) {
        self.fraction = fraction.isNaN ? 0 : min(1, max(0, fraction))
        self.message = message.flatMap { $0.isEmpty ? nil : String(decoding: JobLimits.truncated($0, to: Self.maxMessageBytes), as: UTF8.self) }
        self.attempt = attempt
        self.at = at
    }

    /// "42 % (attempt 2, 2026-12-07T…): copying files".
    public var description: String {
        "\(percentText) (attempt \(attempt), \(at))" + (message.map { ": \($0)" } ?? "")
    }

    /// The fraction as people read it, to a tenth of a percent: "42 %", "37.5 %".
    public var percentText: String {
        let percent = (fraction * 1000).rounded() / 10
        return (percent == percent.rounded() ? "\(Int(percent))" : "\(percent)") + " %"
    }
}

/// A progress report for one job, as a backend stores it.
public struct ProgressReport: Sendable, Hashable {
    /// The job.
    public var id: JobID
    /// Its progress.
    public var progress: JobProgress

    /// A report.
    public init(id: JobID, progress: JobProgress) {
        self.id = id
        self.progress = progress
    }
}
