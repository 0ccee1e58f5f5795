import Foundation
import JobStore

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

    /// A point in time: an ISO 8601 date (`2026-11-23`) or UTC date-time
    /// (`2026-11-23T10:00:00Z`), or a duration meaning that long before `now` (`2h`).
    public static func parseTime(_ text: String, now: Timestamp = .now) throws(Mistake) -> Timestamp {
        if let ago = try? parseDuration(text) { return now.adding(.zero - ago) }
        let parts = text.split(whereSeparator: { "-T:Z".contains($0) }).map(String.init)
        let numbers = parts.compactMap { Int32($0) }
        guard numbers.count == parts.count, numbers.count == 3 || (numbers.count == 6 && text.hasSuffix("Z")) else {
            throw Mistake(description: "'\(text)' is not a time; write 2026-11-23, 2026-11-23T10:00:00Z, or a duration ago such as 2h")
        }
        var fields = tm()
        fields.tm_year = numbers[0] - 1900
        fields.tm_mon = numbers[1] - 1
        fields.tm_mday = numbers[2]
        if numbers.count == 6 {
            fields.tm_hour = numbers[3]
            fields.tm_min = numbers[4]
            fields.tm_sec = numbers[5]
        }
        let requested = fields
        let seconds = timegm(&fields)  // normalizes: 2026-13-45 would roll into 2027
        guard fields.tm_year == requested.tm_year, fields.tm_mon == requested.tm_mon, fields.tm_mday == requested.tm_mday,
            fields.tm_hour == requested.tm_hour, fields.tm_min == requested.tm_min, fields.tm_sec == requested.tm_sec
        else {
            throw Mistake(description: "'\(text)' is not a real date and time (month 1–12, a day the month has, 00:00:00–23:59:59)")
        }
        return Timestamp(microseconds: Int64(seconds) * 1_000_000)
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
