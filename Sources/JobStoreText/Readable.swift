import Foundation
import JobCore

/// What people type and read, in one place for the admin tool and the dashboard: durations
/// (`7d`), points in time (`2026-11-23`, `2026-11-23T10:00:00Z`, `2h` ago), byte counts, short
/// durations, payloads as text or hex, a job's last run. Both faces accept and print the same.
public enum Readable {
    /// Input that is not what it should be; the description says what to write instead.
    public struct Mistake: Error, CustomStringConvertible {
        public let description: String
    }

    /// A duration: a whole number and a unit — ms, s, m, h, d, w — e.g. `7d`, `90m`, `500ms`.
    public static func parseDuration(_ text: String) throws(Mistake) -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)]
        for (unit, milliseconds) in units.sorted(by: { $0.0.count > $1.0.count }) where text.hasSuffix(unit) {
            if let number = Int64(text.dropLast(unit.count)), number >= 0, number <= Int64.max / milliseconds / 1000 {
                return .milliseconds(number * milliseconds)
            }
        }
        throw Mistake(description: "'\(text)' is not a duration; write a number and a unit: ms, s, m, h, d or w (e.g. 7d, 12h, 30m)")
    }

    /// A point in time, in any form the admin tool and the dashboard print one, so a time copied
    /// from their output is accepted:
    /// - an ISO 8601 date (`2026-11-23`, midnight UTC);
    /// - an ISO 8601 date-time with `Z` or an offset, and up to six decimals of a second
    ///   (`2026-11-23T10:00:00Z`, `2026-11-23T10:00:00.123456Z`, `2026-11-23T11:00:00+01:00`);
    /// - microseconds since the Unix epoch, as JSON output gives times (`1763892000000000`);
    /// - a duration meaning that long before `now` (`2h`).
    public static func parseTime(_ text: String, now: Timestamp = .now) throws(Mistake) -> Timestamp {
        if let ago = try? parseDuration(text) { return now.adding(.zero - ago) }
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let micros = Int64(text) { return Timestamp(microseconds: micros) }
        let form = /(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:([Zz])|([+-])(\d{2}):?(\d{2})))?/
        guard let match = text.wholeMatch(of: form) else {
            throw Mistake(description: "'\(text)' is not a time; write 2026-11-23, 2026-11-23T10:00:00Z (an offset such as +01:00 or decimals of a second may follow the seconds), microseconds since 1970, or a duration ago such as 2h")
        }
        let number = { (part: Substring?) in part.flatMap { Int32($0) } ?? 0 }
        var fields = tm()
        fields.tm_year = number(match.1) - 1900
        fields.tm_mon = number(match.2) - 1
        fields.tm_mday = number(match.3)
        fields.tm_hour = number(match.4)
        fields.tm_min = number(match.5)
        fields.tm_sec = number(match.6)
        let requested = fields
        let seconds = timegm(&fields)  // normalizes: 2026-13-45 would roll into 2027
        let offsetMinutes = Int64(number(match.10) * 60 + number(match.11)) * (match.9 == "-" ? -1 : 1)
        guard fields.tm_year == requested.tm_year, fields.tm_mon == requested.tm_mon, fields.tm_mday == requested.tm_mday,
            fields.tm_hour == requested.tm_hour, fields.tm_min == requested.tm_min, fields.tm_sec == requested.tm_sec,
            number(match.10) < 24, number(match.11) < 60
        else {
            throw Mistake(description: "'\(text)' is not a real date and time (month 1–12, a day the month has, 00:00:00–23:59:59, an offset under 24:00)")
        }
        let fraction = match.7.map { Int64($0.padding(toLength: 6, withPad: "0", startingAt: 0)) ?? 0 } ?? 0
        return Timestamp(microseconds: (Int64(seconds) - offsetMinutes * 60) * 1_000_000 + fraction)
    }

    /// Bytes in a binary unit: "563.8 MiB" ("512 B" below a KiB).
    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// A short duration: "850 µs", "12.3 ms", "4.20 s", "3m05s", "2h07m", "1109d05h" (from 48 hours).
    public static func duration(_ duration: Duration) -> String {
        let micros = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        switch micros {
        case ..<1000: return String(format: "%.0f µs", micros)
        case ..<1_000_000: return String(format: "%.1f ms", micros / 1e3)
        case ..<60_000_000: return String(format: "%.2f s", micros / 1e6)
        case ..<3_600_000_000: return "\(Int(micros / 60e6))m" + String(format: "%02ds", Int(micros / 1e6) % 60)
        case ..<172_800_000_000: return "\(Int(micros / 3600e6))h" + String(format: "%02dm", Int(micros / 60e6) % 60)
        default: return "\(Int(micros / 86_400e6))d" + String(format: "%02dh", Int(micros / 3600e6) % 24)
        }
    }

    /// A pipeline's steps as lists show them: "3/5 ok, 1 failed, 1 cancelled" — the steps that
    /// succeeded out of all, then those that ended otherwise (a failed pipeline's cancelled steps
    /// are finished, not done).
    public static func steps(_ pipeline: Pipeline) -> String {
        var text = "\(pipeline.succeededSteps)/\(pipeline.stepCount) ok"
        if pipeline.failedSteps > 0 { text += ", \(pipeline.failedSteps) failed" }
        if pipeline.cancelledSteps > 0 { text += ", \(pipeline.cancelledSteps) cancelled" }
        return text
    }

    /// A time relative to `now`, as tables show it: "now" (within a second), "45s ago", "3m ago",
    /// "5h ago", "12d ago"; "in 59m" for a time ahead.
    public static func relative(_ time: Timestamp, now: Timestamp = .now) -> String {
        let micros = time.microseconds - now.microseconds
        let seconds = abs(micros) / 1_000_000
        let amount: String
        switch seconds {
        case 0: return "now"
        case ..<60: amount = "\(seconds)s"
        case ..<3600: amount = "\(seconds / 60)m"
        case ..<(48 * 3600): amount = "\(seconds / 3600)h"
        default: amount = "\(seconds / 86_400)d"
        }
        return micros < 0 ? amount + " ago" : "in " + amount
    }

    /// A job's last run as two cells, how long it was queued and how long it ran ("… so far"
    /// while it runs); "-" for what the timeline does not show.
    public static func lastRun(_ run: JobTimeline.LastRun?) -> (queued: String, ran: String) {
        (run?.queued.map { duration($0) } ?? "-", run.map { duration($0.ran) + ($0.ended ? "" : " so far") } ?? "-")
    }

    /// The bytes as text when they are UTF-8 without control characters (tabs and newlines
    /// allowed), else `nil`.
    public static func text(_ bytes: [UInt8]) -> String? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        let printable = text.unicodeScalars.allSatisfy { $0 == "\n" || $0 == "\t" || !($0.properties.generalCategory == .control) }
        return printable ? text : nil
    }

    /// Bytes as hex, 16 per line with offsets (like `xxd`), the first `limit` of them.
    public static func hexDump(_ bytes: [UInt8], limit: Int = 512) -> String {
        var lines: [String] = []
        for offset in stride(from: 0, to: min(bytes.count, limit), by: 16) {
            let chunk = bytes[offset..<min(offset + 16, bytes.count)]
            lines.append(String(format: "%08x  ", offset) + chunk.map { String(format: "%02x", $0) }.joined(separator: " "))
        }
        if bytes.count > limit { lines.append("… \(bytes.count - limit) more bytes") }
        return lines.joined(separator: "\n")
    }
}
