// Measures durable async writes per second through the LMDB layer's writer thread.
//
//   swift run -c release --package-path Benchmarks WriteThroughput [--seconds S] [--repeats R] [--durability full|noSync] [--quick]
//
// Each configuration runs on a fresh store in a temporary directory: T tasks each loop
// `await env.write { put one 256-byte value }` for S seconds (after a short warm-up). Prints
// one JSON object per configuration and repeat, then a table of medians.
import Foundation
import LMDB

struct Configuration {
    var name: String
    var tasks: Int
    var writer: WriterOptions
    var failEvery: Int = 0  // every n-th request throws (0: none)
}

struct Measurement {
    var writesPerSecond: Double
    var p50: Double
    var p99: Double
    var averageBatch: Double
    var reruns: Int
}

let values = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 131) }
let data = DatabaseDefinition<UInt64Codec, BytesCodec>(name: "data")
struct Refused: Error {}

struct Settings: Sendable {
    var seconds = 3.0
    var repeats = 3
    var durability = Durability.full

    static func parse() -> Settings {
        var settings = Settings()
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch argument {
            case "--seconds": settings.seconds = Double(arguments.popFirst() ?? "") ?? settings.seconds
            case "--repeats": settings.repeats = Int(arguments.popFirst() ?? "") ?? settings.repeats
            case "--durability": settings.durability = Durability(rawValue: arguments.popFirst() ?? "") ?? settings.durability
            case "--quick": settings.seconds = 0.5; settings.repeats = 1
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
        return settings
    }
}
let settings = Settings.parse()

func run(_ configuration: Configuration, _ settings: Settings) async throws -> Measurement {
    let seconds = settings.seconds
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("write-bench-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let env = try Environment(
        path: directory, options: EnvironmentOptions(durability: settings.durability, writer: configuration.writer), databases: [data])
    defer { env.close() }
    let db = try env.database(data)
    let deadline = ContinuousClock.now + .seconds(seconds)
    let warmUp = ContinuousClock.now + .milliseconds(200)
    let failEvery = configuration.failEvery
    let perTask = try await withThrowingTaskGroup(of: [Double].self) { group in
        for task in 0..<configuration.tasks {
            group.addTask {
                var latencies: [Double] = []
                var n: UInt64 = 0
                while ContinuousClock.now < deadline {
                    let key = UInt64(task) << 40 | n
                    n += 1
                    let start = ContinuousClock.now
                    do {
                        try await env.write { txn in
                            try txn.put(db, key, values)
                            if failEvery > 0 && key % UInt64(failEvery) == 0 { throw Refused() }
                        }
                    } catch is Refused {}
                    let end = ContinuousClock.now
                    if start > warmUp {
                        let d = (end - start).components
                        latencies.append(Double(d.seconds) * 1e6 + Double(d.attoseconds) / 1e12)
                    }
                }
                return latencies
            }
        }
        var all: [[Double]] = []
        for try await latencies in group { all.append(latencies) }
        return all
    }
    let latencies = perTask.flatMap { $0 }.sorted()
    let measured = seconds - 0.2
    let stats = env.writerStatistics
    func percentile(_ p: Double) -> Double {
        latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
    }
    return Measurement(
        writesPerSecond: Double(latencies.count) / measured, p50: percentile(0.5), p99: percentile(0.99),
        averageBatch: stats.averageBatch, reruns: stats.reruns)
}

let oneTransactionPerWrite = WriterOptions(maxBatchSize: 1)
let groupCommit = WriterOptions()
var configurations: [Configuration] = []
for tasks in [1, 2, 8] {
    configurations.append(Configuration(name: "one txn per write", tasks: tasks, writer: oneTransactionPerWrite))
    configurations.append(Configuration(name: "group commit", tasks: tasks, writer: groupCommit))
}
configurations.append(Configuration(name: "group commit, no cohort wait", tasks: 8, writer: WriterOptions(cohortWait: .zero)))
// The adaptive policy off: always batch the whole queue (as if every commit flushed).
configurations.append(Configuration(name: "group commit, always whole queue", tasks: 8, writer: WriterOptions(expensiveCommit: .zero)))
configurations.append(Configuration(name: "group commit, always whole queue", tasks: 64, writer: WriterOptions(expensiveCommit: .zero)))
configurations.append(Configuration(name: "group commit, nested txns", tasks: 8, writer: WriterOptions(isolation: .nestedTransactions)))
configurations.append(Configuration(name: "one txn per write", tasks: 64, writer: oneTransactionPerWrite))
configurations.append(Configuration(name: "group commit, re-run", tasks: 64, writer: WriterOptions(isolation: .rerunWithoutFailed)))
configurations.append(Configuration(name: "group commit, nested txns", tasks: 64, writer: WriterOptions(isolation: .nestedTransactions)))
configurations.append(Configuration(name: "group commit, re-run, 1% fail", tasks: 8, writer: WriterOptions(isolation: .rerunWithoutFailed), failEvery: 100))
configurations.append(Configuration(name: "group commit, nested, 1% fail", tasks: 8, writer: WriterOptions(isolation: .nestedTransactions), failEvery: 100))

func format(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }

// Round-robin over configurations, so drift of a shared machine spreads over all of them.
var runs = Array(repeating: [Measurement](), count: configurations.count)
for _ in 0..<settings.repeats {
    for (index, configuration) in configurations.enumerated() {
        let m = try await run(configuration, settings)
        runs[index].append(m)
        print(
            #"{"bench":"write-throughput","config":"\#(configuration.name)","tasks":\#(configuration.tasks),"durability":"\#(settings.durability.rawValue)","writes_per_s":\#(format(m.writesPerSecond)),"p50_us":\#(format(m.p50, 1)),"p99_us":\#(format(m.p99, 1)),"avg_batch":\#(format(m.averageBatch, 2)),"reruns":\#(m.reruns)}"#)
    }
}
let rows = zip(configurations, runs).map { configuration, runs in
    (configuration, runs.sorted { $0.writesPerSecond < $1.writesPerSecond }[runs.count / 2])
}

print("\nMedians of \(settings.repeats) runs of \(settings.seconds) s, durability \(settings.durability.rawValue):\n")
print("| configuration | tasks | writes/s | p50 µs | p99 µs | requests per commit |")
print("|---|---:|---:|---:|---:|---:|")
for (configuration, m) in rows {
    print("| \(configuration.name) | \(configuration.tasks) | \(format(m.writesPerSecond)) | \(format(m.p50)) | \(format(m.p99)) | \(format(m.averageBatch, 2)) |")
}
