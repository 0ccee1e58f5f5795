import Foundation
import JobStore

/// What is wrong with a line of an export that `import` cannot read, for people (the tool adds
/// the file and the line number).
package struct LineError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// One line of an export (`jobstore export`, read back by `import`): a job, a pipeline, a
/// queue's controls or a schedule — the core's ``RestoreItem``, which either backend restores.
package typealias ExportLine = RestoreItem

extension RestoreItem {
    /// The job's or pipeline's id, or the queue's or schedule's name, as text.
    package var id: String { label }

    /// Decodes a line; throws ``LineError`` saying what is wrong with it, or a `JobStoreError`
    /// for an id that is not one.
    package init(_ line: ArraySlice<UInt8>, _ decoder: JSONDecoder) throws {
        struct Kind: Decodable { var kind: String? }
        do {
            switch try decoder.decode(Kind.self, from: Data(line)).kind {
            case nil, "job"?:
                let json = try decoder.decode(JobJSON.self, from: Data(line))
                self = .job(try json.job(), try json.pastTimeline())
            case "pipeline"?: self = .pipeline(try decoder.decode(PipelineJSON.self, from: Data(line)).export())
            case "queue"?: self = .queue(try decoder.decode(QueueJSON.self, from: Data(line)).export())
            case "schedule"?: self = .schedule(try decoder.decode(ScheduleJSON.self, from: Data(line)).record())
            case let other?: throw LineError("unknown kind '\(other)' (a line is a job, a pipeline, a queue or a schedule)")
            }
        } catch let error as DecodingError {
            throw LineError("not a job, pipeline, queue or schedule: \(ExportLine.describe(error, line))")
        }
    }
}

extension RestoreItem {
    /// A line of spaces (and a carriage return) only: skipped.
    package static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }
    }

    /// What a decoding error says about a line, for people: the field, or where the JSON breaks.
    static func describe(_ error: DecodingError, _ line: ArraySlice<UInt8>) -> String {
        switch error {
        case .keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case .dataCorrupted(let context) where !context.codingPath.isEmpty: context.debugDescription
        // Foundation's decoder on Linux says only "not valid JSON", even of a number its field
        // cannot hold: find out which.
        case .dataCorrupted(let context): ExportLine.whyCorrupt(line) ?? context.debugDescription
        @unknown default: "\(error)"
        }
    }

    /// What is wrong with a line the decoder found corrupt: where its JSON breaks, or the first
    /// number its field cannot hold; `nil` if neither.
    static func whyCorrupt(_ line: ArraySlice<UInt8>) -> String? {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(line))
        } catch {
            return "not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"))"
        }
        func badNumber(_ value: Any, _ path: [String]) -> String? {
            if let array = value as? [Any] {
                return array.indices.lazy.compactMap { badNumber(array[$0], path + ["\($0)"]) }.first
            }
            if let object = value as? [String: Any] {
                return object.keys.sorted().lazy.compactMap { badNumber(object[$0] as Any, path + [$0]) }.first
            }
            guard let number = value as? NSNumber, !(value is Bool), let key = path.last else { return nil }
            let range: ClosedRange<Double> = switch key {
            case "priority": 0...255
            case "attempts", "max_attempts", "attempt", "step": 0...65535
            default: -9.2e18...9.2e18  // microseconds in an Int64
            }
            let double = number.doubleValue
            guard double.rounded() != double || !range.contains(double) else { return nil }
            let expected = range.upperBound > 1e6 ? "microseconds since 1970" : "\(Int(range.lowerBound))…\(Int(range.upperBound))"
            return "field '\(path.joined(separator: "."))' is \(number); it must be a whole number, \(expected)"
        }
        return badNumber(value, [])
    }
}
