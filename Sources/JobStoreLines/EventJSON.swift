import Foundation
import JobStore

/// An event as JSON: in `jobs show --json` (the job's timeline) and, with its position and job,
/// one line of `jobs history --json`. Times are microseconds since the epoch, each with an
/// ISO 8601 copy beside it.
package struct EventJSON: Codable {
    package var position: String?
    package var job: String?
    package var kind: String
    package var at: Int64
    package var atISO: String?
    package var state: String
    package var attempts: UInt16
    package var owner: String?
    package var until: Int64?
    package var untilISO: String?
    package var message: String?
    /// Who made the change (the admin tool, the dashboard), when not the program (format 5).
    package var actor: String?

    /// `job`: the history entry's job; a queue event (recorded under no job) has none.
    package init(_ event: JobEvent, position: HistoryPosition? = nil, job: JobID? = nil) {
        self.position = position?.description
        self.job = event.kind.isQueueEvent ? nil : job?.description
        kind = event.kind.description
        at = event.at.microseconds
        atISO = event.at.iso
        state = event.state.description
        attempts = event.attempts
        owner = event.owner?.description
        until = event.until?.microseconds
        untilISO = event.until?.iso
        message = event.message
        actor = event.actor
    }
}

extension EventJSON {
    /// The event, checked: a known kind and state, an owner of 32 hex digits.
    package func event() throws -> JobEvent {
        guard let kind = JobEvent.Kind(name: kind) else { throw LineError("event kind '\(self.kind)' is unknown") }
        guard let state = JobState(name: state) else { throw LineError("event state '\(self.state)' is unknown") }
        var parsedOwner: OwnerToken?
        if let owner {
            guard owner.count == 32, let high = UInt64(owner.prefix(16), radix: 16), let low = UInt64(owner.suffix(16), radix: 16) else {
                throw LineError("event owner '\(owner)' is not 32 hex digits")
            }
            parsedOwner = OwnerToken(high: high, low: low)
        }
        return JobEvent(
            kind: kind, at: Timestamp(microseconds: at), state: state, attempts: attempts, owner: parsedOwner,
            until: until.map(Timestamp.init(microseconds:)), message: message, actor: actor)
    }
}

/// A job's timeline as JSON.
package struct TimelineJSON: Codable {
    package var events: [EventJSON]
    package var dropped: Int

    package init(_ timeline: JobTimeline) {
        events = timeline.events.map { EventJSON($0) }
        dropped = timeline.dropped
    }
}

extension Timestamp {
    /// ISO 8601 in UTC with microseconds (`2026-11-23T10:00:00.000123Z`): the copy printed
    /// beside each time's raw microseconds in JSON.
    package var iso: String { description }
}

extension Duration {
    /// Whole microseconds.
    package var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
