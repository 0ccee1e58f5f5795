import Foundation
import Testing
import TestSupport

@testable import JobStore

func runHelper(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let child = Process()
    child.executableURL = try helperExecutable("JobStoreTestHelper")
    child.arguments = arguments
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    return (child.terminationStatus, output)
}

@Suite("Write-through cache")
struct CacheTests {
    @Test("hits, misses, write-through updates, and an aborted write leaves the cache as it was")
    func hitsAndWriteThrough() throws {
        try withStore() { store in
            let job = try store.insert(NewJob(name: "a"))
            _ = try store.job(job.id)  // a new job enters on its first read: miss, fill
            _ = try store.job(job.id)  // hit
            var stats = store.cacheStatistics
            #expect(stats.misses == 1 && stats.hits == 1 && stats.entries == 1)
            try store.update(job.id) { $0.priority = 5 }  // written through
            #expect(try store.job(job.id)?.priority == 5)
            #expect(store.cacheStatistics.hits == 2)
            struct Refused: Error {}
            _ = try? store.write { txn in
                try txn.update(job.id) { $0.priority = 6 }
                throw Refused()
            }
            #expect(try store.job(job.id)?.priority == 5)
            try store.delete(job.id)
            #expect(try store.job(job.id) == nil)
            stats = store.cacheStatistics
            #expect(stats.entries == 0)
        }
    }

    @Test("bounded by entries and bytes; CLOCK keeps the jobs read again")
    func bounded() throws {
        try withStore(JobStoreOptions(durability: .noSync, cache: CacheOptions(maxEntries: 50, maxBytes: 1 << 20))) { store in
            let jobs = try store.insert((0..<200).map { NewJob(name: "j\($0)", payload: [UInt8](repeating: 1, count: 100)) })
            let hot = jobs.prefix(10).map(\.id)
            for id in hot { _ = try store.job(id) }
            for round in 0..<3 {
                for job in jobs.dropFirst(10 + 60 * round).prefix(60) {
                    _ = try store.job(job.id)
                    for id in hot { _ = try store.job(id) }  // the hot set is read between cold reads
                }
            }
            let stats = store.cacheStatistics
            #expect(stats.entries <= 50)
            #expect(stats.evictions > 0)
            let hitsBefore = stats.hits
            for id in hot { _ = try store.job(id) }
            #expect(store.cacheStatistics.hits == hitsBefore + hot.count, "the hot jobs stayed cached")

            let small = try openStore(TemporaryDirectory(), JobStoreOptions(durability: .noSync, cache: CacheOptions(maxEntries: 1000, maxBytes: 4096)))
            defer { small.close() }
            for job in try small.insert((0..<50).map { NewJob(name: "j\($0)", payload: [UInt8](repeating: 1, count: 500)) }) {
                _ = try small.job(job.id)
            }
            #expect(small.cacheStatistics.bytes <= 4096)
        }
    }

    @Test("another process changes a cached job: the next read sees the change")
    func coherentAcrossProcesses() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory, JobStoreOptions())
        defer { store.close() }
        let job = try store.insert(NewJob(name: "shared", payload: Array("before".utf8)))
        #expect(try store.job(job.id)?.payload == Array("before".utf8))
        #expect(try store.job(job.id)?.payload == Array("before".utf8))
        #expect(store.cacheStatistics.hits == 1)
        let result = try runHelper(["set-payload", directory.path, job.id.description, "after"])
        #expect(result.status == 0)
        #expect(try store.job(job.id)?.payload == Array("after".utf8))
        #expect(store.cacheStatistics.invalidations >= 1)
        // Our own next write keeps working and is cached again.
        try store.update(job.id) { $0.priority = 3 }
        #expect(try store.job(job.id)?.priority == 3)
        #expect(try store.job(job.id)?.payload == Array("after".utf8))
    }

    @Test("counts are answered again only while nothing committed since: another process's insert and this process's own writes are counted at once")
    func countsAcrossProcesses() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory, JobStoreOptions())
        defer { store.close() }
        let job = try store.insert(NewJob(name: "here"))
        #expect(try store.counts()[.pending] == 1)
        #expect(try store.counts()[.pending] == 1)  // nothing committed since: the same counts
        #expect(try runHelper(["insert", directory.path, "there", "default"]).status == 0)
        #expect(try store.counts()[.pending] == 2 && store.count(.pending) == 2)
        try store.transition(job.id, to: .running)
        #expect(try store.counts()[.pending] == 1 && store.count(.running) == 1)
        #expect(try store.verify().isEmpty)  // the counters equal a recount
    }
}

@Suite("Change feed")
struct FeedTests {
    @Test("subscribers receive committed changes in order; aborted writes send nothing")
    func committedChanges() async throws {
        try await withStore() { store in
            let feed = store.changes()
            let job = try await store.insert(NewJob(name: "a"))
            struct Refused: Error {}
            _ = try? await store.write { txn in
                try txn.insert(NewJob(name: "never"))
                throw Refused()
            }
            try await store.cancel(job.id)
            try await store.delete(job.id)
            var received: [JobChange.Kind] = []
            var transactions: [Int] = []
            for await event in feed {
                guard case .change(let change) = event else { continue }
                #expect(change.id == job.id)
                received.append(change.kind)
                transactions.append(change.transaction)
                if received.count == 3 { break }
            }
            #expect(received == [.inserted, .updated, .deleted])
            #expect(transactions == transactions.sorted() && Set(transactions).count == 3 && transactions[0] > 0)
        }
    }

    @Test("events arrive in commit order when threads and tasks write at once", arguments: [true, false])
    func commitOrderAcrossThreads(cache: Bool) async throws {
        var options = testOptions
        options.cache.enabled = cache
        options.feedCapacity = 100_000
        try await withStore(options) { store in
            let feed = store.changes()
            let perWriter = 300
            // 4 threads writing synchronously (each on its own thread) and 4 tasks through the writer thread.
            let threads = (0..<4).map { writer in
                Thread.detachedResult {
                    for n in 0..<perWriter { try store.insert(NewJob(name: "sync-\(writer)-\(n)")) }
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for n in 0..<perWriter { try await store.insert(NewJob(name: "async-\(writer)-\(n)")) }
                    }
                }
                try await group.waitForAll()
            }
            for thread in threads { try thread.value() }
            var transactions: [Int] = []
            for await event in feed {
                guard case .change(let change) = event else { Issue.record("unexpected \(event)"); break }
                transactions.append(change.transaction)
                if transactions.count == 8 * perWriter { break }
            }
            #expect(transactions.count == 8 * perWriter)
            let outOfOrder = zip(transactions, transactions.dropFirst()).filter { $0 > $1 }.count
            #expect(outOfOrder == 0, "\(outOfOrder) events arrived after an event of a later transaction")
        }
    }

    @Test("a subscriber that falls behind gets an overflow event counting what it missed")
    func overflow() async throws {
        let directory = TemporaryDirectory()
        var options = JobStoreOptions(durability: .noSync)
        options.feedCapacity = 10
        let store = try openStore(directory, options)
        defer { store.close() }
        let feed = store.changes()
        for n in 0..<30 { try await store.insert(NewJob(name: "j\(n)")) }
        try await store.insert(NewJob(name: "last"))  // not consumed yet: the buffer is full
        var changes = 0
        var missed = 0
        var iterator = feed.makeAsyncIterator()
        for _ in 0..<10 {
            switch await iterator.next() {
            case .change?: changes += 1
            case .overflow(let count)?: missed += count
            case .progress?: Issue.record("a progress report nobody made")
            case nil: break
            }
        }
        #expect(changes == 10)
        try await store.insert(NewJob(name: "after"))
        if case .overflow(let count)? = await iterator.next() { missed += count }
        #expect(missed == 21)
        if case .change(let change)? = await iterator.next() { #expect(change.job?.name == "after") } else { Issue.record("no change after the overflow") }
    }

    @Test("commit signals: the watcher's events name the store's data file or its commit signal file; others wake nothing, a queue overflow wakes it")
    func commitSignalEvents() throws {
        /// inotify events as `read(2)` returns them: a 16-byte header (wd, mask, cookie, len), then the name NUL-padded to `len`.
        func events(_ list: [(mask: UInt32, name: String)]) -> [UInt8] {
            var bytes: [UInt8] = []
            for (mask, name) in list {
                let length = name.isEmpty ? 0 : (name.utf8.count / 16 + 1) * 16
                for word in [UInt32(1), mask, 0, UInt32(length)] { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
                bytes += Array(name.utf8) + Array(repeating: 0, count: length - name.utf8.count)
            }
            return bytes
        }
        func wakes(_ list: [(mask: UInt32, name: String)]) -> Bool {
            events(list).withUnsafeBytes { FileWatcher.anyWrites(to: JobRepository.commitFiles, in: $0) }
        }
        let modify = UInt32(IN_MODIFY)
        #expect(wakes([(modify, "data.mdb")]))
        #expect(wakes([(modify, "backup.partial"), (modify, "commit-signal")]))
        #expect(!wakes([(modify, "backup.partial"), (modify, "data.mdb.old")]))
        #expect(!wakes([]))
        #expect(wakes([(UInt32(IN_Q_OVERFLOW), "")]))
    }
}

@Suite("Crash consistency of the job store", .serialized)
struct JobStoreCrashTests {
    @Test("a writer killed with SIGKILL mid-batch: reopened, verify() is clean and every acknowledged job is present")
    func killedWriter() throws {
        let directory = TemporaryDirectory()
        for round in 0..<4 {
            let path = directory.sub("round-\(round)")
            let lines = try killedChildOutput("JobStoreTestHelper", ["insert-loop", path], after: Double.random(in: 0.2...0.8))
            let acknowledged = try lines.map { try JobID(parsing: String($0)) }

            let store = try JobRepository(path: path, options: JobStoreOptions(mapSize: 1 << 20))
            defer { store.close() }
            try expectConsistent(store)
            for id in acknowledged { #expect(try store.job(id) != nil, "acknowledged job \(id) is missing") }
            let counts = try store.counts()
            #expect(counts.values.reduce(0, +) % 20 == 0, "batches are whole: \(counts)")
            #expect(counts[.succeeded] == counts.values.reduce(0, +) / 10, "each batch completed 2 of its 20 jobs")
        }
    }

    @Test("a process killed with SIGKILL while pipelines advance: reopened, verify() is clean and every acknowledged pipeline is whole")
    func killedWhileAdvancing() throws {
        let directory = TemporaryDirectory()
        for round in 0..<3 {
            let path = directory.sub("round-\(round)")
            let lines = try killedChildOutput("JobStoreTestHelper", ["pipeline-loop", path], after: Double.random(in: 0.3...0.9))
            let acknowledged = try lines.map { try PipelineID(parsing: String($0)) }
            #expect(!acknowledged.isEmpty, "the child committed no pipeline before it was killed")

            let store = try JobRepository(path: path, options: JobStoreOptions(mapSize: 1 << 20))
            defer { store.close() }
            try expectConsistent(store)  // includes: no step waits with its dependencies done, none runs before them
            for id in acknowledged {
                let details = try #require(try store.pipelineDetails(id), "acknowledged pipeline \(id) is missing")
                #expect(details.jobs.count == 60)
            }
        }
    }

    /// Kill rounds of the mixed crash test: 3 in `swift test`, more from JOBSTORE_CRASH_ROUNDS
    /// (`scripts/crash-loop.sh`).
    static let mixedRounds = ProcessInfo.processInfo.environment["JOBSTORE_CRASH_ROUNDS"].flatMap(Int.init) ?? 3

    @Test("a process killed at random instants in a mix of every kind of write: verify() is clean and every acknowledged change is there")
    func killedInMixedWrites() throws {
        let directory = TemporaryDirectory()
        var checked = 0
        for round in 0..<Self.mixedRounds {
            let path = directory.sub("round-\(round)")
            let lines = try killedChildOutput("JobStoreTestHelper", ["mixed-loop", path], after: Double.random(in: 0.15...0.9))
            let store = try JobRepository(path: path, options: JobStoreOptions(mapSize: 1 << 20))
            defer { store.close() }
            try expectConsistent(store)
            // The last acknowledged state of each job, and whether a prune began after it.
            var acknowledged: [JobID: (state: String, line: Int)] = [:]
            var lastPruneBegin = -1
            var pipelines: [PipelineID] = []
            for (number, line) in lines.enumerated() {
                let parts = line.split(separator: " ").map(String.init)
                switch parts.first {
                case "job": acknowledged[try JobID(parsing: parts[1])] = (parts[2], number)
                case "pipeline": pipelines.append(try PipelineID(parsing: parts[1]))
                case "prune-begin": lastPruneBegin = number
                default: break
                }
            }
            for (id, ack) in acknowledged {
                guard let job = try store.job(id) else {
                    #expect(ack.line < lastPruneBegin, "acknowledged job \(id) (\(ack.state)) is missing and no prune began after it")
                    continue
                }
                if ack.state == "succeeded" || ack.state == "cancelled" {
                    #expect(job.state.description == ack.state, "job \(id) was acknowledged \(ack.state), is \(job.state)")
                }
                checked += 1
            }
            for id in pipelines { #expect(try store.pipelineDetails(id)?.jobs.count == 3, "acknowledged pipeline \(id) is not whole") }
            checked += pipelines.count
        }
        print("mixed crash test: \(Self.mixedRounds) kills survived, \(checked) acknowledged jobs and pipelines checked")
    }
}
