/// The event codecs: every byte of a job's timeline (the last field of its record, version 2)
/// and of the store's history (`history`), in this one file. docs/FORMAT.md is its prose twin.
///
/// An event (13 bytes, then the fields its flags announce):
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | kind (``JobEvent/Kind``) |
/// | 1  | 1 | the job's state after the event |
/// | 2  | 2 | attempts after the event (UInt16 LE) |
/// | 4  | 8 | at (Int64 LE, µs) |
/// | 12 | 1 | flags: bit 0 owner, bit 1 until, bit 2 message, bit 3 actor (format 5); other bits 0 |
/// | 13 | … | owner (16 bytes, big-endian), until (Int64 LE, µs), message (UInt16 LE length + UTF-8, at most 256 bytes), actor (UInt8 length + UTF-8, at most 100 bytes), each if flagged |
///
/// A timeline block (the last field of a job record of version 2, after its UInt16 LE length):
/// dropped (UInt32 LE: older events no longer kept) · count (UInt8, at most 32) · the events,
/// oldest first.
///
/// A history entry: key `clock (8, ordered) · sequence (UInt32 BE)`; value version (2) · job id
/// (16) · the event · the seal (``Seal``: a CRC32C of the bytes before it, UInt32 LE; version 1
/// has none).
enum EventFormat {
    /// The version of a history entry this program writes.
    static let currentVersion: UInt8 = 2
    static let eventHeaderSize = 13
    static let timelineHeaderSize = 5
    static let historyKeySize = 12

    private static let ownerFlag: UInt8 = 1, untilFlag: UInt8 = 2, messageFlag: UInt8 = 4, actorFlag: UInt8 = 8

    // MARK: Events

    static func size(of event: JobEvent) -> Int {
        eventHeaderSize + (event.owner == nil ? 0 : 16) + (event.until == nil ? 0 : 8)
            + (event.message.map { 2 + $0.utf8.count } ?? 0) + (event.actor.map { 1 + $0.utf8.count } ?? 0)
    }

    static func write(_ event: JobEvent, to writer: inout RecordWriter) {
        writer.put(event.kind.rawValue)
        writer.put(event.state.rawValue)
        writer.put(event.attempts)
        writer.put(event.at.microseconds)
        writer.put(
            (event.owner == nil ? 0 : ownerFlag) | (event.until == nil ? 0 : untilFlag) | (event.message == nil ? 0 : messageFlag)
                | (event.actor == nil ? 0 : actorFlag))
        if let owner = event.owner { writer.put128(owner.high, owner.low) }
        if let until = event.until { writer.put(until.microseconds) }
        if let message = event.message {
            writer.put(UInt16(message.utf8.count))
            writer.putBytes(message.utf8)
        }
        if let actor = event.actor {
            writer.put(UInt8(actor.utf8.count))
            writer.putBytes(actor.utf8)
        }
    }

    static func encode(_ event: JobEvent) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: size(of: event)) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            write(event, to: &writer)
            initialized = writer.offset
        }
    }

    static func readEvent(_ reader: inout RecordReader) throws -> JobEvent {
        let rawKind = try reader.u8()
        guard let kind = JobEvent.Kind(rawValue: rawKind) else { throw reader.corrupt("event kind \(rawKind) is unknown") }
        let rawState = try reader.u8()
        guard let state = JobState(rawValue: rawState) else { throw reader.corrupt("event state \(rawState) is unknown") }
        let attempts = try reader.u16()
        let at = Timestamp(microseconds: try reader.i64())
        let flags = try reader.u8()
        guard flags & ~(ownerFlag | untilFlag | messageFlag | actorFlag) == 0 else { throw reader.corrupt("event flags \(flags) has unknown bits") }
        var event = JobEvent(kind: kind, at: at, state: state, attempts: attempts)
        if flags & ownerFlag != 0 {
            let (high, low) = try reader.u128()
            event.owner = OwnerToken(high: high, low: low)
        }
        if flags & untilFlag != 0 { event.until = Timestamp(microseconds: try reader.i64()) }
        if flags & messageFlag != 0 {
            let count = Int(try reader.u16())
            guard count <= JobEvent.maxMessageBytes else { throw reader.corrupt("an event message of \(count) bytes (at most \(JobEvent.maxMessageBytes))") }
            event.message = try reader.string(count, "event message")
        }
        if flags & actorFlag != 0 {
            let count = Int(try reader.u8())
            guard count <= JobEvent.maxActorBytes else { throw reader.corrupt("an event actor of \(count) bytes (at most \(JobEvent.maxActorBytes))") }
            event.actor = try reader.string(count, "event actor")
        }
        return event
    }

    /// The size of the event starting at `offset`, from its flags alone (to drop it unread).
    static func eventSize(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard offset + eventHeaderSize <= bytes.count else { return nil }
        let flags = bytes[offset + 12]
        var size = eventHeaderSize + (flags & ownerFlag != 0 ? 16 : 0) + (flags & untilFlag != 0 ? 8 : 0)
        if flags & messageFlag != 0 {
            guard offset + size + 2 <= bytes.count else { return nil }
            size += 2 + Int(UInt16(bytes[offset + size]) | UInt16(bytes[offset + size + 1]) << 8)
        }
        if flags & actorFlag != 0 {
            guard offset + size + 1 <= bytes.count else { return nil }
            size += 1 + Int(bytes[offset + size])
        }
        return offset + size <= bytes.count ? size : nil
    }

    // MARK: Timelines

    /// A timeline block holding the events of `stored` (the record's current block, if any)
    /// plus `event`: the oldest is dropped when the block holds ``JobEvent/timelineLimit``.
    /// Appends without decoding the events kept.
    static func appending(_ event: JobEvent, to stored: UnsafeRawBufferPointer?, id: JobID) throws -> [UInt8] {
        let append = try TimelineAppend(event, to: stored, id: id)
        return [UInt8](unsafeUninitializedCapacity: append.size) { buffer, count in
            count = append.write(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// An event appended to a stored timeline block: what of the block is kept, planned before
    /// the new block is written (its size first, so the write path can place it).
    struct TimelineAppend {
        let event: JobEvent
        /// Events dropped from the timeline so far, this append's included.
        let dropped: UInt32
        /// Events the new block holds.
        let count: Int
        /// The stored events kept, bytes as they are.
        let kept: UnsafeRawBufferPointer

        init(_ event: JobEvent, to stored: UnsafeRawBufferPointer?, id: JobID) throws {
            self.event = event
            var dropped: UInt32 = 0
            var count = 0
            var kept = UnsafeRawBufferPointer(start: nil, count: 0)
            if let stored {
                var reader = RecordReader(bytes: stored, subject: .job(id))
                dropped = try reader.integer(UInt32.self)
                count = Int(try reader.u8())
                kept = UnsafeRawBufferPointer(rebasing: stored[timelineHeaderSize...])
                if count >= JobEvent.timelineLimit {
                    guard let first = eventSize(stored, at: timelineHeaderSize) else { throw reader.corrupt("its first event runs past the end") }
                    kept = UnsafeRawBufferPointer(rebasing: kept[first...])
                    count -= 1
                    dropped &+= 1
                }
            }
            (self.dropped, self.count, self.kept) = (dropped, count + 1, kept)
        }

        /// The new block's bytes.
        var size: Int { timelineHeaderSize + kept.count + EventFormat.size(of: event) }

        /// Writes the new block at the start of `raw` (at least ``size`` bytes); returns ``size``.
        func write(into raw: UnsafeMutableRawBufferPointer) -> Int {
            var writer = RecordWriter(buffer: raw)
            writer.put(dropped)
            writer.put(UInt8(count))
            writer.putBytes(kept)
            EventFormat.write(event, to: &writer)
            return writer.offset
        }
    }

    /// The timeline block of `timeline` (a restored job's past): its newest ``JobEvent/timelineLimit``
    /// events, the older ones counted as dropped.
    static func encodeTimeline(_ timeline: JobTimeline) -> [UInt8] {
        let kept = timeline.events.suffix(JobEvent.timelineLimit)
        let dropped = UInt32(clamping: timeline.dropped + timeline.events.count - kept.count)
        var bytes: [UInt8] = withUnsafeBytes(of: dropped.littleEndian) { Array($0) } + [UInt8(kept.count)]
        for event in kept { bytes += encode(event) }
        return bytes
    }

    /// Decodes a timeline block (``RecordFormat/timeline(_:id:)`` finds it in a record).
    static func decodeTimeline(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> JobTimeline {
        var reader = RecordReader(bytes: bytes, subject: .job(id))
        let dropped = Int(try reader.integer(UInt32.self))
        let count = Int(try reader.u8())
        guard count <= JobEvent.timelineLimit else { throw reader.corrupt("a timeline of \(count) events (at most \(JobEvent.timelineLimit))") }
        var events: [JobEvent] = []
        events.reserveCapacity(count)
        for _ in 0..<count { events.append(try readEvent(&reader)) }
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over after the timeline") }
        return JobTimeline(events: events, dropped: dropped)
    }

    // MARK: History

    static func historyKey(_ position: HistoryPosition) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: historyKeySize) { buffer, count in
            count = writeHistoryKey(position, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Writes the history key of `position` (``historyKeySize`` bytes) at the start of `raw`; returns its length.
    static func writeHistoryKey(_ position: HistoryPosition, into raw: UnsafeMutableRawBufferPointer) -> Int {
        raw.storeBytes(of: Keys.orderedTime(position.time), toByteOffset: 0, as: UInt64.self)
        raw.storeBytes(of: position.sequence.bigEndian, toByteOffset: 8, as: UInt32.self)
        return historyKeySize
    }

    static func position(fromKey key: UnsafeRawBufferPointer) throws -> HistoryPosition {
        guard key.count == historyKeySize else {
            throw JobStoreError(.corruptRecord, "a history key of \(key.count) bytes (12 expected)", hint: "Run `jobstore verify`")
        }
        return HistoryPosition(time: Keys.time(from: key, at: 0), sequence: UInt32(bigEndian: key.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
    }

    /// The history value of `event` of job `id`.
    static func encodeHistory(_ id: JobID, _ event: JobEvent) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: historyValueSize(of: event)) { buffer, count in
            count = writeHistoryValue(id, event, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// The bytes of the history value of `event`.
    static func historyValueSize(of event: JobEvent) -> Int { 17 + size(of: event) + Seal.size }

    /// Writes the history value of `event` of job `id` at the start of `raw` (at least
    /// ``historyValueSize(of:)`` bytes); returns its length.
    static func writeHistoryValue(_ id: JobID, _ event: JobEvent, into raw: UnsafeMutableRawBufferPointer) -> Int {
        var writer = RecordWriter(buffer: raw)
        writer.put(currentVersion)
        writer.put128(id.high, id.low)
        write(event, to: &writer)
        Seal.put(&writer)
        return writer.offset
    }

    static func decodeHistory(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> HistoryEntry {
        let position = try position(fromKey: key)
        let bytes = try Seal.body(of: value, .history(position), current: currentVersion, sealedSince: 2)
        var reader = RecordReader(bytes: bytes, subject: .history(position))
        reader.offset = 1
        let (high, low) = try reader.u128()
        let event = try readEvent(&reader)
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over") }
        return HistoryEntry(position: position, jobID: JobID(high: high, low: low), event: event)
    }
}
