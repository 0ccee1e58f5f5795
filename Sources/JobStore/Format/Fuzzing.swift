/// Entry points for the fuzzers (`Fuzz/`, libFuzzer) and the corpus replay test: each feeds
/// arbitrary bytes to the decoders of one kind of stored data, the way a damaged store would.
/// A decoder may throw (a clear error is the right answer to garbage); it must never crash,
/// read out of bounds or loop. Not API: `@_spi(Fuzzing) import JobStore`.
@_spi(Fuzzing)
public enum Fuzzing {
    /// The stored kinds of data, one fuzz target each.
    public enum Target: String, CaseIterable, Sendable {
        case jobRecord = "job-record"
        case pipelineRecord = "pipeline-record"
        case events
        case keys
        case metaRecords = "meta-records"
    }

    /// Decodes `bytes` as data of `target` in every way the store reads such data. Returns
    /// whether a decoder accepted them (for the corpus statistics); errors are swallowed.
    @discardableResult
    public static func run(_ target: Target, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let id = JobID(high: 0x0190_a5c4_1b2e_7000, low: 0x8123_4567_89ab_cdef)
        var accepted = false
        func attempt<T>(_ body: () throws -> T) {
            if (try? body()) != nil { accepted = true }
        }
        switch target {
        case .jobRecord:
            attempt { try RecordFormat.header(bytes, id: id) }
            attempt { try RecordFormat.stateAndQueue(bytes, id: id) }
            attempt { try RecordFormat.isPipelineStep(bytes, id: id) }
            // As they are (a mutated sealed record fails its seal), then with the seal made to
            // match, so the field decoders behind the seal see the mutations too.
            for record in [Array(bytes), resealed(bytes)] {
                record.withUnsafeBytes { bytes in
                    attempt { try RecordFormat.decode(bytes, id: id) }
                    attempt { try RecordFormat.timeline(bytes, id: id).map { try EventFormat.decodeTimeline($0, id: id) } }
                }
            }
        case .pipelineRecord:
            let pipeline = PipelineID(high: id.high, low: id.low)
            for record in [Array(bytes), resealed(bytes)] {
                record.withUnsafeBytes { bytes in
                    attempt { try PipelineFormat.decode(bytes, id: pipeline) }
                    attempt { try PipelineFormat.decodeStep(bytes, pipeline: pipeline, index: 3) }
                }
            }
        case .events:
            attempt { try EventFormat.decodeTimeline(bytes, id: id) }
            attempt { try EventFormat.appending(JobEvent(kind: .changed, at: .now, state: .pending, attempts: 1), to: bytes, id: id) }
            if bytes.count >= EventFormat.historyKeySize {
                let key = UnsafeRawBufferPointer(rebasing: bytes[..<EventFormat.historyKeySize])
                let value = UnsafeRawBufferPointer(rebasing: bytes[EventFormat.historyKeySize...])
                for entry in [Array(value), resealed(value)] {
                    entry.withUnsafeBytes { value in attempt { try EventFormat.decodeHistory(key: key, value: value) } }
                }
            }
            attempt { try EventFormat.position(fromKey: bytes) }
        case .keys:
            attempt { try Keys.trailingID(bytes, index: "fuzz") }
            let prefix = bytes.first.map { Int($0 % 8) } ?? 0
            attempt { try Keys.readyOrder(bytes, prefixLength: prefix) }
            attempt { try Keys.stepIndex(bytes) }
            attempt { try Keys.pipelineID(bytes) }
            if bytes.count >= 8 { _ = Keys.time(from: bytes, at: bytes.count - 8) }
        case .metaRecords:
            attempt { try Counters.decode(bytes, key: "fuzz") }
            attempt { try RateLimit.decode(bytes, queue: "fuzz") }
            attempt { try ScheduleFormat.decode(bytes, name: "fuzz") }
            // A progress record and a heartbeat (the `progress` and `workers` databases' values, as small and as sealed).
            for record in [Array(bytes), resealed(bytes)] {
                record.withUnsafeBytes { bytes in
                    attempt { try ProgressFormat.decode(bytes, id: id) }
                    attempt { try WorkerFormat.decode(bytes, id: OwnerToken(high: id.high, low: id.low)) }  // a heartbeat (`workers`)
                }
            }
        }
        return accepted
    }

    /// `bytes` with their last four bytes replaced by the seal of the rest (as they are when
    /// shorter than a seal).
    static func resealed(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var record = Array(bytes)
        guard record.count >= Seal.size else { return record }
        record.withUnsafeMutableBytes { buffer in
            var writer = RecordWriter(buffer: buffer, offset: buffer.count - Seal.size)
            Seal.put(&writer)
        }
        return record
    }
}
