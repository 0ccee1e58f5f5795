import ArgumentParser
import Foundation
import JobStore

#if canImport(Glibc)
import Glibc
#endif

/// A plain-text table: a header row and aligned columns (numbers right-aligned).
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: [String]) { rows.append(cells) }

    func render() -> String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: max(0, widths[column] - cell.count))
                let numeric = !cell.isEmpty && cell.allSatisfy { $0.isNumber || $0 == "," || $0 == "." }
                return numeric ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

/// Prints a value as pretty, key-sorted JSON.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// One-line JSON (for JSON-lines output).
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Progress of a long operation on stderr, only when stderr is a terminal; at most 10 updates a second.
struct Progress {
    let label: String
    let enabled = isatty(2) == 1
    private var last = ContinuousClock.now - .seconds(1)

    init(_ label: String) {
        self.label = label
        if enabled { FileHandle.standardError.write(Data("\(label)…".utf8)) }
    }

    mutating func update(_ count: Int) {
        guard enabled, ContinuousClock.now - last > .milliseconds(100) else { return }
        last = .now
        FileHandle.standardError.write(Data("\r\(label): \(count.grouped)".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

extension Int {
    /// 1234567 → "1,234,567".
    var grouped: String {
        let digits = String(abs(self))
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return self < 0 ? "-" + result : result
    }

    /// Bytes in a human unit: "563.8 MiB".
    var bytes: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(self)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(self) B" : String(format: "%.1f %@", value, units[unit])
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Parses a duration: a number and a unit — ms, s, m, h, d, w — e.g. `7d`, `90m`, `500ms`.
func parseDuration(_ text: String) throws -> Duration {
    let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)]
    for (unit, milliseconds) in units.sorted(by: { $0.0.count > $1.0.count }) where text.hasSuffix(unit) {
        if let number = Int64(text.dropLast(unit.count)), number >= 0 {
            return .milliseconds(number * milliseconds)
        }
    }
    throw ValidationError("'\(text)' is not a duration; write a number and a unit: ms, s, m, h, d or w (e.g. 7d, 12h, 30m)")
}

/// Parses a point in time: an ISO 8601 date (`2026-11-23`) or UTC date-time
/// (`2026-11-23T10:00:00Z`), or a duration meaning that long ago (`2h`).
func parseTime(_ text: String) throws -> Timestamp {
    if let duration = try? parseDuration(text) {
        return Timestamp.now.adding(.zero - duration)
    }
    let parts = text.split(whereSeparator: { "-T:Z".contains($0) }).map(String.init)
    let numbers = parts.compactMap { Int32($0) }
    guard numbers.count == parts.count, numbers.count == 3 || (numbers.count == 6 && text.hasSuffix("Z")) else {
        throw ValidationError("'\(text)' is not a time; write 2026-11-23, 2026-11-23T10:00:00Z, or a duration ago such as 2h")
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
        throw ValidationError("'\(text)' is not a real date and time (month 1–12, a day the month has, 00:00:00–23:59:59)")
    }
    return Timestamp(microseconds: Int64(seconds) * 1_000_000)
}

/// Parses job ids given on the command line; a malformed one is a usage error.
func parseIDs(_ texts: [String]) throws -> [JobID] {
    try texts.map { text in
        do { return try JobID(parsing: text) } catch { throw ValidationError("\(error)") }
    }
}

/// The paging options of every listing: `--limit`, `--newest-first`, `--after CURSOR`.
struct PagingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "At most this many rows.")
    var limit = 50
    @Flag(help: "Newest first.")
    var newestFirst = false
    @Option(help: "Continue after this cursor (printed at the end of the previous page).")
    var after: String?

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    var order: ListOrder { newestFirst ? .newestFirst : .oldestFirst }

    /// `--after` parsed by `parse`; a malformed cursor is a usage error.
    func cursor<Cursor>(_ parse: (String) throws -> Cursor) throws -> Cursor? {
        do { return try after.map(parse) } catch { throw ValidationError("\(error)") }
    }

    /// The line after a page's table: how to get the next page, or how many rows the last one had.
    func footer(next: (some CustomStringConvertible)?, count: Int, noun: String) -> String {
        if let next { return "next page: --after \(next)" }
        return "(\(count) \(noun)\(count == 1 ? "" : "s"))"
    }
}

/// A JSON value with its type kept (numbers and booleans are not strings), for the small
/// objects commands print with `--json`.
enum JSONValue: Encodable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(Int64(value)) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(floatLiteral value: Double) { self = .double(value) }

    /// A count.
    static func count(_ value: Int) -> JSONValue { .int(Int64(value)) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
