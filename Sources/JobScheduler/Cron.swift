import Foundation
import JobCore

/// A five-field cron expression — minute, hour, day of month, month, day of week — or a
/// shorthand (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`).
///
/// Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of
/// those. Months and days of the week also take names (`jan`…`dec`, `sun`…`sat`); day of week 7
/// is Sunday too. As in Vixie cron, when both day fields are restricted a day matches either.
/// Parsing is strict: each error names the field and what is wrong.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let description: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let daysOfMonthRestricted: Bool
    let daysOfWeekRestricted: Bool

    private static let shorthands = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`.
    ///
    /// - Throws: ``SchedulerError`` naming the field and the problem.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded: String
        if trimmed.hasPrefix("@") {
            guard let fields = Self.shorthands[trimmed.lowercased()] else {
                throw SchedulerError("cron '\(text)': unknown shorthand '\(trimmed)'; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
            expanded = fields
        } else {
            expanded = trimmed
        }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw SchedulerError("cron '\(text)': \(fields.count) fields; write five — minute hour day-of-month month day-of-week — or a shorthand such as @daily")
        }
        func parse(_ index: Int, _ name: String, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0) throws -> Set<Int> {
            try CronExpression.field(fields[index], name: name, position: index + 1, range: range, names: names, nameBase: nameBase, expression: text)
        }
        minutes = try parse(0, "minute", 0...59)
        hours = try parse(1, "hour", 0...23)
        daysOfMonth = try parse(2, "day of month", 1...31)
        months = try parse(3, "month", 1...12, names: Self.monthNames, nameBase: 1)
        daysOfWeek = Set(try parse(4, "day of week", 0...7, names: Self.dayNames).map { $0 % 7 })
        daysOfMonthRestricted = fields[2] != "*"
        daysOfWeekRestricted = fields[4] != "*"
        description = text
    }

    private static func field(
        _ text: String, name: String, position: Int, range: ClosedRange<Int>, names: [String], nameBase: Int, expression: String
    ) throws -> Set<Int> {
        func invalid(_ what: String) -> SchedulerError {
            SchedulerError("cron '\(expression)': field \(position) (\(name)) '\(text)': \(what)")
        }
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw invalid("\(number) is out of range \(range.lowerBound)–\(range.upperBound)") }
                return number
            }
            if let index = names.firstIndex(of: token.lowercased()) { return index + nameBase }
            throw invalid("'\(token)' is not a number\(names.isEmpty ? "" : " or a name (\(names.joined(separator: ", ")))")")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw invalid("an empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw invalid("more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else { throw invalid("the step '\(pieces[1])' is not a positive number") }
                step = parsed
            }
            let base = pieces[0]
            var low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw invalid("the range \(low)-\(high) runs backwards") }
            } else {
                low = try value(base)
                high = pieces.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    /// The first time after `time` (to the minute) that the expression matches, in `timeZone`;
    /// `nil` if none within about five years (e.g. `0 0 30 2 *`).
    public func next(after time: Timestamp, in timeZone: TimeZone) -> Timestamp? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let seconds = Double(time.microseconds) / 1e6
        var date = Date(timeIntervalSince1970: (seconds / 60).rounded(.down) * 60 + 60)
        let limit = date.addingTimeInterval(5 * 366 * 86_400)
        while date < limit {
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: date)
            guard let month = parts.month, let day = parts.day, let hour = parts.hour, let minute = parts.minute, let weekday = parts.weekday
            else { return nil }
            if !months.contains(month) {
                guard let start = calendar.date(from: DateComponents(year: parts.year, month: month, day: 1)),
                    let next = calendar.date(byAdding: .month, value: 1, to: start) else { return nil }
                date = next
            } else if !dayMatches(day: day, weekday: weekday - 1) {
                guard let next = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: date)) else { return nil }
                date = next
            } else if !hours.contains(hour) {
                date = date.addingTimeInterval(Double(60 - minute) * 60)
            } else if !minutes.contains(minute) {
                date = date.addingTimeInterval(60)
            } else {
                return Timestamp(microseconds: Int64((date.timeIntervalSince1970 * 1e6).rounded()))
            }
        }
        return nil
    }

    private func dayMatches(day: Int, weekday: Int) -> Bool {
        switch (daysOfMonthRestricted, daysOfWeekRestricted) {
        case (true, true): daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): daysOfMonth.contains(day)
        case (false, true): daysOfWeek.contains(weekday)
        case (false, false): true
        }
    }
}
