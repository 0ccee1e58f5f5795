import Foundation
import JobStore
import Testing
import TestSupport

/// A store of 20,000 pending jobs (four queues) with payloads of `payloadBytes`, for the tool to
/// import from, back up or prune.
func fillStore(_ path: String, payloadBytes: Int) throws {
    let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
    defer { store.close() }
    for batch in 0..<10 {
        _ = try store.insert((0..<2_000).map { NewJob(name: "job-\(batch)-\($0)", queue: "q\($0 % 4)", payload: [UInt8](repeating: 7, count: payloadBytes)) })
    }
}

/// Opens a store the tool wrote, checks `verify()` is clean, and gives it to `body`.
func checkStore(_ path: String, _ body: (JobRepository) throws -> Void = { _ in }) throws {
    let store = try JobRepository(path: path)
    defer { store.close() }
    #expect(try store.verify().isEmpty, "\(path) does not verify")
    try body(store)
}

/// The admin tool's writing commands killed at random instants (issue 11): what they said was
/// done is done, the store verifies, and running the command again finishes the work.
@Suite("The admin tool killed mid-write")
struct AdminToolKillTests {
    @Test("import killed at random instants: every batch it reported committed is in the store, batches are whole, the store verifies")
    func importKilled() throws {
        let directory = TemporaryDirectory()
        let source = directory.sub("source")
        try fillStore(source, payloadBytes: 200)
        let file = directory.sub("jobs.jsonl")
        #expect(try jobstore("export", source, "--output", file).status == 0)
        let ids = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map { line in
            try #require(try json(String(line))["id"] as? String)
        }
        var cut = 0
        for round in 0..<4 {
            let target = directory.sub("import-\(round)")
            let (out, killed) = try runKilled("jobstore", ["import", target, file, "--batch-size", "500", "--create"], after: Double.random(in: 0.1...1.5))
            if killed { cut += 1 }
            // "committed 1,500 jobs, last id …": everything up to that id is safe.
            let reported = out.compactMap { line -> Int? in
                guard line.hasPrefix("committed ") else { return nil }
                return Int(line.dropFirst(10).prefix { $0 != " " }.replacingOccurrences(of: ",", with: ""))
            }.last ?? 0
            guard FileManager.default.fileExists(atPath: target + "/data.mdb") else {
                #expect(reported == 0)
                continue
            }
            try checkStore(target) { store in
                let count = try store.counts().values.reduce(0, +)
                #expect(count >= reported && (count % 500 == 0 || count == ids.count), "\(count) jobs after \(reported) reported")
                for id in ids.prefix(reported) { #expect(try store.job(JobID(parsing: id)) != nil) }
            }
        }
        print("import: \(cut) of 4 runs cut short by SIGKILL")
    }

    @Test("prune killed at random instants: the store verifies, no job it should keep is gone, and pruning again finishes")
    func pruneKilled() throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var cut = 0
        for round in 0..<3 {
            try? FileManager.default.removeItem(atPath: path)
            do {
                let store = try JobRepository(path: path, options: JobStoreOptions(durability: .noSync))
                defer { store.close() }
                let done = try store.insert((0..<10_000).map { NewJob(name: "done-\($0)", payload: [UInt8](repeating: 1, count: 200)) })
                try store.write { txn in
                    for job in done {
                        try txn.transition(job.id, to: .running)
                        try txn.transition(job.id, to: .succeeded)
                    }
                }
                _ = try store.insert((0..<300).map { NewJob(name: "keep-\($0)") })
            }
            let (_, killed) = try runKilled(
                "jobstore", ["prune", path, "--state", "succeeded", "--older-than", "0s", "--batch-size", "250"], after: Double.random(in: 0.05...0.4))
            if killed { cut += 1 }
            try checkStore(path) { store in
                #expect(try store.count(.pending) == 300)
                let left = try store.count(.succeeded)
                #expect(left % 250 == 0, "\(left) succeeded left: a batch was cut (round \(round), killed: \(killed))")
            }
            #expect(try jobstore("prune", path, "--state", "succeeded", "--older-than", "0s").status == 0)
            try checkStore(path) { store in
                let (succeeded, pending) = (try store.count(.succeeded), try store.count(.pending))
                #expect(succeeded == 0 && pending == 300)
            }
        }
        print("prune: \(cut) of 3 runs cut short by SIGKILL")
    }

    @Test("backup killed at random instants: the destination is absent or a whole store, never a partial one; the source verifies; after removing DESTINATION.partial a backup succeeds")
    func backupKilled() throws {
        let directory = TemporaryDirectory()
        let source = directory.sub("source")
        try fillStore(source, payloadBytes: 1_000)
        var cut = 0
        for round in 0..<4 {
            let destination = directory.sub("backup-\(round)")
            let (_, killed) = try runKilled("jobstore", ["backup", source, destination] + (round % 2 == 0 ? [] : ["--compact"]), after: Double.random(in: 0.02...0.08))
            if killed { cut += 1 }
            if FileManager.default.fileExists(atPath: destination + "/data.mdb") {
                try checkStore(destination) { store in
                    let pending = try store.count(.pending)
                    #expect(pending == 20_000)
                }
            } else {
                // Cut short: nothing at the destination; a partial copy is named for what it is.
                if FileManager.default.fileExists(atPath: destination + ".partial") {
                    let again = try jobstore("backup", source, destination)
                    #expect(again.status == 1 && again.err.contains(".partial exists"), "\(again.err)")
                    try FileManager.default.removeItem(atPath: destination + ".partial")
                }
                #expect(try jobstore("backup", source, destination).status == 0)
                try checkStore(destination)
            }
        }
        print("backup: \(cut) of 4 runs cut short by SIGKILL")
        try checkStore(source) { store in
            let pending = try store.count(.pending)
            #expect(pending == 20_000)
        }
    }
}

/// The import parser under every truncation and many flipped bits of real export lines (issue
/// 11's fuzzing of the admin tool's parser): each line is imported or named with its reason,
/// never a crash; `--dry-run` runs them all in one process and commits nothing.
@Suite("import's parser under mutated lines")
struct ImportParserSweepTests {
    @Test("every truncation (each 5th byte) and the low and high bit of each of the first 400 bytes of a job line, a leased job line and a pipeline line: imported or named, no crash, nothing committed")
    func mutatedLines() throws {
        let directory = TemporaryDirectory()
        let source = directory.sub("source")
        #expect(try jobstore("demo", "--dir", source, "--jobs", "20").status == 0)
        let lines = try jobstore("export", source).out.split(separator: "\n").map { Array($0.utf8) }
        let seeds = [
            try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"errors\":[{") }),
            try #require(lines.first { !String(decoding: $0, as: UTF8.self).contains("\"pipeline\"") }),
            try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"kind\":\"pipeline\"") }),
        ]
        var mutated: [[UInt8]] = []
        for seed in seeds {
            for end in stride(from: 0, to: seed.count, by: 5) { mutated.append(Array(seed.prefix(end))) }
            for index in 0..<min(400, seed.count) {
                for bit in [UInt8(0x01), 0x80] {
                    var line = seed
                    line[index] ^= bit
                    mutated.append(line)
                }
            }
        }
        let file = directory.sub("mutated.jsonl")
        try Data(mutated.map { $0 + [0x0A] }.joined()).write(to: URL(fileURLWithPath: file))
        let result = try jobstore("import", directory.sub("target"), file, "--create", "--dry-run", "--json")
        #expect(result.status == 1, "some lines are bad: \(result.err.suffix(300))")
        let summary = try json(result.out)
        let (jobs, pipelines, bad) = (summary["jobs"] as? Int ?? -1, summary["pipelines"] as? Int ?? -1, summary["bad_lines"] as? Int ?? -1)
        let named = result.err.split(separator: "\n")
        #expect(named.count == bad && named.allSatisfy { $0.hasPrefix("jobstore: \(file) line ") })
        #expect(jobs > 0 && bad > 0 && jobs + pipelines + bad >= mutated.count - 5, "\(jobs) + \(pipelines) + \(bad) of \(mutated.count)")
        try checkStore(directory.sub("target")) { store in
            let total = try store.counts().values.reduce(0, +)
            #expect(total == 0)  // nothing committed
        }
        print("import --dry-run: \(mutated.count) mutated lines, \(jobs) jobs and \(pipelines) pipelines accepted, \(bad) named")
    }
}
