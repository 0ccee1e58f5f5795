import ArgumentParser
import Foundation
import JobStore
import JobStoreText

#if canImport(Glibc)
import Glibc
#endif

/// A plain-text table: a header row and aligned columns (numbers right-aligned). On a terminal
/// (``Terminal``), state names in the `states` columns are coloured, and the `shrinkable` columns
/// are cut (with "…") so that each line fits the window.
struct Table {
    var headers: [String]
    var rows: [[String]] = []
    /// Columns holding job or pipeline state names, coloured on a terminal.
    var states: Set<Int> = []
    /// Columns that may be cut to fit the terminal, the first cut first.
    var shrinkable: [Int] = []
    /// Columns that may be left out when cutting the shrinkable ones is not enough, the first
    /// left out first (a note under the table names them).
    var optional: [Int] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: [String]) { rows.append(cells) }

    func render(width: Int? = Terminal.width, colour: Bool = Terminal.colour) -> String {
        var widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        var shown = Array(headers.indices)
        if let width {
            let natural = widths
            func excess() -> Int { shown.map { widths[$0] }.reduce(0, +) + 2 * (shown.count - 1) - width }
            /// Cuts the shown shrinkable columns, from their natural widths, until the lines fit.
            func shrink() {
                widths = natural
                for column in shrinkable where shown.contains(column) {
                    guard excess() > 0 else { break }
                    let floor = min(widths[column], max(headers[column].count, 6))  // never below the header or 6
                    widths[column] = max(floor, widths[column] - excess())
                }
            }
            shrink()
            for column in optional where excess() > 0 {
                shown.removeAll { $0 == column }
                shrink()
            }
        }
        let left = headers.indices.filter { !shown.contains($0) }.map { headers[$0] }
        func line(_ cells: [String], header: Bool) -> String {
            shown.filter { $0 < cells.count }.map { column in
                let text = cells[column]
                let cell = text.count > widths[column] ? String(text.prefix(widths[column] - 1)) + "…" : text
                let pad = String(repeating: " ", count: max(0, widths[column] - cell.count))
                let numeric = !cell.isEmpty && cell.allSatisfy { $0.isNumber || $0 == "," || $0 == "." }
                let painted = colour && !header && states.contains(column) ? Terminal.coloured(state: cell) : cell
                return numeric ? pad + painted : painted + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        let note = left.isEmpty ? [] : ["(\(left.joined(separator: ", ")) left out to fit \(width ?? 0) columns; --json has every field)"]
        return ([line(headers, header: true)] + rows.map { line($0, header: false) } + note).joined(separator: "\n")
    }
}

/// What stdout is: a terminal gets colours (unless `NO_COLOR` is set, https://no-color.org) and
/// tables cut to its width; a pipe or file gets neither.
enum Terminal {
    static let isTerminal = isatty(1) == 1
    static let colour = isTerminal && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty

    /// The window's width in columns, on a terminal.
    static var width: Int? {
        guard isTerminal, let columns = window?.ws_col, columns > 0 else { return nil }
        return Int(columns)
    }

    /// The window's size, if stdout is a terminal that says.
    static var window: winsize? {
        var size = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 ? size : nil
    }

    /// A job or pipeline state's name in its colour: failed red, succeeded green, running cyan,
    /// pending yellow, waiting magenta, cancelled dim; anything else as it is.
    static func coloured(state name: String) -> String {
        let codes = ["failed": "31", "succeeded": "32", "running": "36", "pending": "33", "waiting": "35", "cancelled": "2"]
        guard let code = codes[name] else { return name }
        return "\u{1B}[\(code)m\(name)\u{1B}[0m"
    }
}

/// A time as tables show it: relative to now ("3m ago", "in 59m"), or with `utc` the full UTC time.
func shown(_ time: Timestamp, utc: Bool, now: Timestamp = .now) -> String {
    utc ? time.description : Readable.relative(time, now: now)
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
    print(String(decoding: try jsonEncoder([.prettyPrinted]).encode(value), as: UTF8.self))
}

/// One-line JSON (for JSON-lines output).
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try jsonEncoder([]).encode(value), as: UTF8.self)
}

/// The encoder of every `--json`: keys sorted and in snake_case (a property `expiredLeases` is
/// `expired_leases`; dictionary keys such as queue names are left as they are).
private func jsonEncoder(_ formatting: JSONEncoder.OutputFormatting) -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = formatting.union([.sortedKeys, .withoutEscapingSlashes])
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return encoder
}

/// Seconds from `time` to `now`: how long the oldest ready job has waited, in every command's output.
func seconds(since time: Timestamp, now: Timestamp = .now) -> Double {
    Double(now.microseconds - time.microseconds) / 1e6
}

/// How long since `time`, for people ("3m05s", "1109d19h"): the oldest ready job's wait in tables.
func waited(since time: Timestamp, now: Timestamp = .now) -> String {
    Readable.duration(.microseconds(now.microseconds - time.microseconds))
}

/// Counts by state name with every state present, zeros included.
func byName<State: CaseIterable & Hashable & CustomStringConvertible>(_ counts: [State: Int]) -> [String: Int] {
    Dictionary(uniqueKeysWithValues: State.allCases.map { ($0.description, counts[$0] ?? 0) })
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

    /// Bytes in a human unit: "563.8 MiB" (``Readable/bytes(_:)``).
    var bytes: String { Readable.bytes(self) }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// ``Readable/parseDuration(_:)``, a malformed one a usage error.
func parseDuration(_ text: String) throws -> Duration {
    do { return try Readable.parseDuration(text) } catch { throw ValidationError(error.description) }
}

/// ``Readable/parseTime(_:now:)``, a malformed one a usage error.
func parseTime(_ text: String) throws -> Timestamp {
    do { return try Readable.parseTime(text) } catch { throw ValidationError(error.description) }
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
    @Option(parsing: .unconditional, help: "Continue after this cursor (printed at the end of the previous page).")
    var after: String?

    func validate() throws {
        guard Validation.enabled else { return }
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

/// A warning on stderr: `jobstore: warning: …`.
func warn(_ text: String) {
    FileHandle.standardError.write(Data("jobstore: warning: \(text)\n".utf8))
}

/// The system's reason for a Foundation file error ("No such file or directory"), not its
/// NSError dump.
func reason(_ error: Error) -> String {
    let error = error as NSError
    if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return error.localizedDescription
}

/// Refuses a `--dir` that cannot become a fresh store: a file, or a directory holding a store.
func requireFreshStoreDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
        throw ValidationError("\(path) is a file; give a new or empty directory")
    }
    if FileManager.default.fileExists(atPath: path + "/data.mdb") {
        throw ValidationError("\(path) already holds a store; give a new or empty directory")
    }
}
