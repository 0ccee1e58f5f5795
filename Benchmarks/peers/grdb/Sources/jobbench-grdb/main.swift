// JobBench on GRDB.swift 7 over SQLite: what a Swift team would build instead of JobStore,
// written as GRDB's documentation recommends — a record type (FetchableRecord with an explicit
// `init(row:)`, PersistableRecord), a DatabasePool (WAL: reads beside the writer), cached
// statements on the hot paths. The schema, indexes, triggers and claim SQL are those of the C
// program on SQLite (jobbench-sqlite.c); the generator, phases, checks and JSON lines those of
// every peer (jobbench.h, "store":"grdb").
//
//   swift build -c release --package-path Benchmarks/peers/grdb
//   .build/release/jobbench-grdb --jobs jb_N() --durability full|relaxed --dir PATH [--phases a,b,…]
//
// Durability: full is synchronous=FULL, relaxed synchronous=OFF (set on the writer after the
// pool opens: GRDB's WAL set-up makes it NORMAL, under which commits are not flushed). The
// concurrent phases are 8 threads calling the pool, each call its own write transaction (GRDB
// serialises writes).
import Foundation
import GRDB
import JobBenchC

// MARK: The job, as a GRDB user keeps it

struct Job: FetchableRecord, PersistableRecord {
    static let databaseTableName = "jobs"
    var id: Data
    var name: String
    var queue: String
    var tenant: String?
    var state: Int
    var priority: Int
    var createdAt: Int64
    var updatedAt: Int64
    var runAt: Int64
    var attempts: Int
    var maxAttempts: Int
    var leaseExpiresAt: Int64?
    var leaseOwner: Data?
    var payload: Data

    init(row: Row) {
        id = row[0]
        name = row[1]
        queue = row[2]
        tenant = row[3]
        state = row[4]
        priority = row[5]
        createdAt = row[6]
        updatedAt = row[7]
        runAt = row[8]
        attempts = row[9]
        maxAttempts = row[10]
        leaseExpiresAt = row[11]
        leaseOwner = row[12]
        payload = row[13]
    }

    func encode(to container: inout PersistenceContainer) {
        container["id"] = id
        container["name"] = name
        container["queue"] = queue
        container["tenant"] = tenant
        container["state"] = state
        container["priority"] = priority
        container["created_at"] = createdAt
        container["updated_at"] = updatedAt
        container["run_at"] = runAt
        container["attempts"] = attempts
        container["max_attempts"] = maxAttempts
        container["lease_expires_at"] = leaseExpiresAt
        container["lease_owner"] = leaseOwner
        container["payload"] = payload
    }

    /// Job number `n` of the workload, as the generator makes it.
    init(_ n: Int64, state: Int32) {
        var job = job_t()
        jb_make_job(n, state, &job)
        func text<T>(_ tuple: T, _ count: UInt8) -> String {
            withUnsafeBytes(of: tuple) { String(decoding: $0.prefix(Int(count)), as: UTF8.self) }
        }
        id = withUnsafeBytes(of: job.id) { Data($0) }
        name = text(job.name, job.name_len)
        queue = text(job.queue, job.queue_len)
        tenant = text(job.tenant, job.tenant_len)
        self.state = Int(job.state)
        priority = Int(job.priority)
        createdAt = job.created_at
        updatedAt = job.updated_at
        runAt = job.run_at
        attempts = Int(job.attempts)
        maxAttempts = Int(job.max_attempts)
        leaseExpiresAt = Int(state) == JB_RUNNING ? job.lease_expires_at : nil
        leaseOwner = Int(state) == JB_RUNNING ? withUnsafeBytes(of: job.lease_owner) { Data($0) } : nil
        payload = withUnsafeBytes(of: job.payload) { Data($0.prefix(Int(job.payload_len))) }
    }
}

let columns = "id, name, queue, tenant, state, priority, created_at, updated_at, run_at, attempts, max_attempts, lease_expires_at, lease_owner, payload"

let schema = """
    CREATE TABLE jobs (id BLOB PRIMARY KEY, name TEXT NOT NULL, queue TEXT NOT NULL, tenant TEXT, state INTEGER NOT NULL,
     priority INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, run_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, lease_expires_at INTEGER, lease_owner BLOB,
     payload BLOB NOT NULL) WITHOUT ROWID;
    CREATE INDEX jobs_state_created ON jobs (state, created_at, id);
    CREATE INDEX jobs_created ON jobs (created_at, id);
    CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id) WHERE state = 1;
    CREATE TABLE counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO counts VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);
    CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs BEGIN UPDATE counts SET n = n + 1 WHERE state = new.state; END;
    CREATE TRIGGER jobs_moved AFTER UPDATE OF state ON jobs WHEN old.state <> new.state BEGIN
     UPDATE counts SET n = n - 1 WHERE state = old.state; UPDATE counts SET n = n + 1 WHERE state = new.state; END;
    CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs BEGIN UPDATE counts SET n = n - 1 WHERE state = old.state; END;
    """

let toRunning = """
    UPDATE jobs SET state = 2, attempts = attempts + 1, lease_expires_at = ?1 + 300000000, lease_owner = ?2, updated_at = ?1
    WHERE id = ?3 AND state = 1
    """
let toSucceeded = "UPDATE jobs SET state = 3, lease_expires_at = NULL, lease_owner = NULL, updated_at = ?1 WHERE id = ?2 AND state = 2"
let claimSQL = """
    UPDATE jobs SET state = 2, attempts = attempts + 1, lease_expires_at = ?1 + 300000000, lease_owner = ?2, updated_at = ?1
    WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_ready WHERE state = 1 AND run_at <= ?1 ORDER BY priority DESC, run_at, id LIMIT ?3)
    RETURNING \(columns)
    """

func failCheck(_ message: String) -> Never {
    FileHandle.standardError.write("check failed: \(message)\n".data(using: .utf8)!)
    exit(1)
}

/// A phase's own stream of draws (jobbench.h's stream_t).
struct Stream {
    let seed: UInt64
    var k: UInt64 = 0
    init(seed: UInt64) { self.seed = seed }
    mutating func below(_ bound: Int64) -> Int64 { jb_stream_below(seed, &k, bound) }
}

func idData(_ n: Int64) -> Data {
    var id: (UInt64, UInt64) = (0, 0)
    withUnsafeMutableBytes(of: &id) { jb_job_id(n, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
    return withUnsafeBytes(of: id) { Data($0) }
}

func owner(_ now: UInt64) -> Data {
    var bytes = [UInt8](repeating: 0, count: 16)
    jb_put_be64(&bytes, now)
    return Data(bytes)
}

func emitLine(_ phase: String, _ ops: Int64, _ seconds: Double, _ latencies: inout [Double], extra: String? = nil) {
    latencies.withUnsafeMutableBufferPointer { buffer in
        if let extra {
            extra.withCString { jb_emit(phase, ops, seconds, buffer.baseAddress, Int64(buffer.count), $0) }
        } else {
            jb_emit(phase, ops, seconds, buffer.baseAddress, Int64(buffer.count), nil)
        }
    }
}

func emitLine(_ phase: String, _ ops: Int64, _ seconds: Double, extra: String? = nil) {
    var none: [Double] = []
    emitLine(phase, ops, seconds, &none, extra: extra)
}

// MARK: The store

var dirArgument: UnsafePointer<CChar>?
var phasesArgument: UnsafePointer<CChar>?
jb_parse(CommandLine.argc, CommandLine.unsafeArgv, "grdb", &dirArgument, &phasesArgument)
let directory = String(cString: dirArgument!)
let phases = phasesArgument.map { String(cString: $0) }
let path = directory + "/jobs.sqlite"
if FileManager.default.fileExists(atPath: path) {
    FileHandle.standardError.write("\(directory) already holds a store\n".data(using: .utf8)!)
    exit(2)
}
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let relaxed = jb_relaxed() != 0
var configuration = Configuration()
configuration.busyMode = .timeout(60)
configuration.prepareDatabase { db in
    try db.execute(sql: relaxed ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL")
    try db.execute(sql: "PRAGMA cache_size=-262144")
}
let pool = try DatabasePool(path: path, configuration: configuration)
// Again on the writer: opening a pool sets WAL mode with synchronous=NORMAL after
// prepareDatabase (GRDB's default), which would flush no commit.
try pool.writeWithoutTransaction { db in try db.execute(sql: relaxed ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL") }
try pool.write { db in try db.execute(sql: schema) }

func insert(_ job: Job, _ db: Database) throws { try job.insert(db) }

func stateOf(_ id: Data) throws -> Int? {
    try pool.read { db in try Int.fetchOne(db.cachedStatement(sql: "SELECT state FROM jobs WHERE id = ?"), arguments: [id]) }
}

func counter(_ state: Int32) throws -> Int64 {
    try pool.read { db in try Int64.fetchOne(db.cachedStatement(sql: "SELECT n FROM counts WHERE state = ?"), arguments: [state]) ?? -1 }
}

/// Moves one job with `sql` (toRunning or toSucceeded); false if it was not in the state.
func move(_ db: Database, _ sql: String, _ id: Data, _ now: UInt64) throws -> Bool {
    let statement = try db.cachedStatement(sql: sql)
    if sql == toRunning {
        try statement.execute(arguments: [Int64(now), owner(now), id])
    } else {
        try statement.execute(arguments: [Int64(now), id])
    }
    return db.changesCount == 1
}

func claim(_ db: Database, _ limit: Int, _ now: UInt64) throws -> [Job] {
    try Job.fetchAll(db.cachedStatement(sql: claimSQL), arguments: [Int64(now), owner(now), limit])
}

func randomJob(_ state: Int32, _ stream: inout Stream) throws -> Data {
    while true {
        let id = idData(stream.below(jb_total()))
        if try stateOf(id) == Int(state) { return id }
    }
}

func mono() -> Double { jb_mono() }

var allClaimed: [Data] = []

func checkClaimed(_ ids: [Data], _ phase: String) throws {
    var raw = [UInt8]()
    raw.reserveCapacity(ids.count * 16)
    for id in ids { raw += id }
    raw.withUnsafeMutableBufferPointer { buffer in jb_check_claimed_once(buffer.baseAddress, Int64(ids.count), phase) }
    for id in ids where try stateOf(id) != JB_SUCCEEDED { failCheck("\(phase): a claimed job is not succeeded") }
}

// MARK: Phases

func phaseLoad() throws {
    var elapsed = 0.0
    for start in stride(from: Int64(0), to: jb_N(), by: 1000) {
        let batch = (start..<min(start + 1000, jb_N())).map { Job($0, state: jb_load_state($0)) }
        let t = mono()
        try pool.write { db in for job in batch { try insert(job, db) } }
        elapsed += mono() - t
    }
    jb_set_total(jb_N())
    emitLine("load", jb_N(), elapsed)
}

func phaseInsertSingle() throws {
    let count = jb_scaled(10000)
    var latencies: [Double] = []
    for i in 0..<count {
        let job = Job(jb_total() + i, state: Int32(JB_PENDING))
        let t = mono()
        try pool.write { db in try insert(job, db) }
        latencies.append((mono() - t) * 1e6)
    }
    jb_set_total(jb_total() + count)
    emitLine("insert-single", count, latencies.reduce(0, +) / 1e6, &latencies)
}

/// Runs `body(worker)` on 8 threads; returns the wall time and each worker's latencies.
func runWorkers(_ body: @escaping @Sendable (Int) throws -> [Double]) -> (Double, [Double]) {
    final class Results: @unchecked Sendable {
        var latencies = [[Double]](repeating: [], count: 8)
        let lock = NSLock()
    }
    let results = Results()
    let done = DispatchGroup()
    let t = mono()
    for worker in 0..<8 {
        done.enter()
        Thread {
            do {
                let latencies = try body(worker)
                results.lock.withLock { results.latencies[worker] = latencies }
            } catch {
                failCheck("worker \(worker): \(error)")
            }
            done.leave()
        }.start()
    }
    done.wait()
    return (mono() - t, results.latencies.flatMap { $0 })
}

func phaseInsertConcurrent() throws {
    let count = jb_scaled(20000)
    let first = jb_total()
    let (wall, latencies) = runWorkers { worker in
        var latencies: [Double] = []
        for n in stride(from: first + Int64(worker), to: first + count, by: 8) {
            let job = Job(n, state: Int32(JB_PENDING))
            let t = mono()
            try pool.write { db in try insert(job, db) }
            latencies.append((mono() - t) * 1e6)
        }
        return latencies
    }
    jb_set_total(jb_total() + count)
    var all = latencies
    emitLine("insert-concurrent", count, wall, &all)
}

func phaseGet() throws {
    let count = jb_scaled(1_000_000)
    var stream = Stream(seed: 1001)
    let ids = (0..<count).map { _ in idData(stream.below(jb_total())) }
    var latencies: [Double] = []
    latencies.reserveCapacity(Int(count))
    var missing = 0
    for id in ids {
        let t = mono()
        let job = try pool.read { db in try Job.fetchOne(db.cachedStatement(sql: "SELECT \(columns) FROM jobs WHERE id = ?"), arguments: [id]) }
        latencies.append((mono() - t) * 1e6)
        if job == nil { missing += 1 }
    }
    if missing > 0 { failCheck("get: ids not found") }
    emitLine("get", count, latencies.reduce(0, +) / 1e6, &latencies)
}

func phasePendingOldest() throws {
    let count = jb_scaled(10000)
    var latencies: [Double] = []
    var rows = 0
    for _ in 0..<count {
        let t = mono()
        let page = try pool.read { db in
            try Job.fetchAll(db.cachedStatement(sql: "SELECT \(columns) FROM jobs WHERE state = 1 ORDER BY created_at, id LIMIT 100"))
        }
        latencies.append((mono() - t) * 1e6)
        rows += page.count
    }
    let pending = try counter(Int32(JB_PENDING))
    if rows != Int(count * min(pending, 100)) { failCheck("pending-oldest returned the wrong number of rows") }
    emitLine("pending-oldest", count, latencies.reduce(0, +) / 1e6, &latencies)
}

func phaseCountByState() throws {
    let count = jb_scaled(10000)
    var sum: Int64 = 0
    let t = mono()
    for _ in 0..<count {
        sum += try pool.read { db in try Int64.fetchAll(db.cachedStatement(sql: "SELECT n FROM counts")).reduce(0, +) }
    }
    let elapsed = mono() - t
    if sum != count * jb_total() { failCheck("count-by-state sums differ") }
    emitLine("count-by-state", count, elapsed)
}

func phaseTimeRange() throws {
    let queries = jb_scaled(1000), window = jb_N() / 100
    var stream = Stream(seed: 1002)
    var rows = 0
    let t = mono()
    for _ in 0..<queries {
        let first = stream.below(jb_N() - window + 1)
        let ids = try pool.read { db in
            try Data.fetchAll(
                db.cachedStatement(sql: "SELECT id FROM jobs WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id"),
                arguments: [jb_created_at(first), jb_created_at(first + window)])
        }
        rows += ids.count
    }
    let elapsed = mono() - t
    emitLine("time-range", Int64(rows), elapsed, extra: "\"queries\":\(queries),\"rows_per_query\":\(String(format: "%.1f", Double(rows) / Double(queries)))")
}

func phaseScanFilter() throws {
    var found: Int64 = 0
    let t = mono()
    for _ in 0..<10 {
        found += try pool.read { db in
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM jobs NOT INDEXED WHERE +state = 1 AND payload IS NOT NULL")) ?? 0
        }
    }
    let elapsed = mono() - t
    if found != 10 * (try counter(Int32(JB_PENDING))) { failCheck("scan-filter found a different number of pending jobs than the counter") }
    emitLine("scan-filter", 10, elapsed)
}

func phaseTransition() throws {
    let count = jb_scaled(20000)
    var stream = Stream(seed: 1003)
    var latencies: [Double] = []
    for _ in 0..<count {
        let id = try randomJob(Int32(JB_PENDING), &stream)
        let t = mono()
        let moved = try pool.write { db in try move(db, toRunning, id, jb_now_us()) }
        if !moved { failCheck("transition: not pending") }
        latencies.append((mono() - t) * 1e6)
    }
    emitLine("transition", count, latencies.reduce(0, +) / 1e6, &latencies)
}

func phaseTransitionBatch() throws {
    let count = jb_scaled(50000)
    var stream = Stream(seed: 1004)
    var done: Int64 = 0
    var elapsed = 0.0
    while done < count {
        let size = min(count - done, 100)
        var batch: [Data] = []
        while batch.count < size {
            let id = try randomJob(Int32(JB_RUNNING), &stream)
            if !batch.contains(id) { batch.append(id) }
        }
        let t = mono()
        try pool.write { db in
            let now = jb_now_us()
            for id in batch where try !move(db, toSucceeded, id, now) { failCheck("transition-batch: not running") }
        }
        elapsed += mono() - t
        done += size
    }
    emitLine("transition-batch", count, elapsed)
}

func phaseClaim() throws {
    let count = jb_scaled(20000)
    var latencies: [Double] = []
    var ids: [Data] = []
    for _ in 0..<count {
        let t = mono()
        guard let job = try pool.write({ db in try claim(db, 1, jb_now_us()).first }) else { failCheck("claim found no ready job") }
        let moved = try pool.write { db in try move(db, toSucceeded, job.id, jb_now_us()) }
        if !moved { failCheck("claim: the claimed job was not running") }
        latencies.append((mono() - t) * 1e6)
        ids.append(job.id)
    }
    try checkClaimed(ids, "claim")
    emitLine("claim", count, latencies.reduce(0, +) / 1e6, &latencies)
}

func phaseClaimBatch() throws {
    let count = jb_scaled(40000)
    var ids: [Data] = []
    let t = mono()
    while ids.count < count {
        let size = min(Int(count) - ids.count, 100)
        let jobs = try pool.write { db in try claim(db, size, jb_now_us()) }
        if jobs.count != size { failCheck("claim-batch ran out of ready jobs") }
        try pool.write { db in
            let now = jb_now_us()
            for job in jobs where try !move(db, toSucceeded, job.id, now) { failCheck("claim-batch: a claimed job was not running") }
        }
        ids += jobs.map(\.id)
    }
    let elapsed = mono() - t
    try checkClaimed(ids, "claim-batch")
    emitLine("claim-batch", count, elapsed)
}

func phaseClaimConcurrent() throws {
    let count = jb_scaled(20000)
    final class Claimed: @unchecked Sendable {
        var ids = [[Data]](repeating: [], count: 8)
        let lock = NSLock()
    }
    let claimed = Claimed()
    let (wall, _) = runWorkers { worker in
        let share = Int(count / 8) + (Int64(worker) < count % 8 ? 1 : 0)
        var mine: [Data] = []
        while mine.count < share {
            guard let job = try pool.write({ db in try claim(db, 1, jb_now_us()).first }) else { failCheck("claim-concurrent found no ready job") }
            let moved = try pool.write { db in try move(db, toSucceeded, job.id, jb_now_us()) }
            if !moved { failCheck("claim-concurrent: a claimed job was not running") }
            mine.append(job.id)
        }
        claimed.lock.withLock { claimed.ids[worker] = mine }
        return []
    }
    try checkClaimed(claimed.ids.flatMap { $0 }, "claim-concurrent")
    emitLine("claim-concurrent", count, wall)
}

/// The counters equal a recount, and SQLite finds its indexes intact.
func finalChecks() throws {
    try pool.read { db in
        var counted = [Int64](repeating: 0, count: 6)
        for row in try Row.fetchAll(db, sql: "SELECT state, count(*) FROM jobs NOT INDEXED GROUP BY state") { counted[row[0]] = row[1] }
        for state in 0..<6 where try Int64.fetchOne(db, sql: "SELECT n FROM counts WHERE state = ?", arguments: [state]) != counted[state] {
            failCheck("a counter differs from the recount")
        }
        if try String.fetchOne(db, sql: "PRAGMA integrity_check") != "ok" { failCheck("integrity_check") }
    }
}

let bodies: [(String, () throws -> Void)] = [
    ("insert-single", phaseInsertSingle), ("insert-concurrent", phaseInsertConcurrent), ("get", phaseGet),
    ("pending-oldest", phasePendingOldest), ("count-by-state", phaseCountByState), ("time-range", phaseTimeRange),
    ("scan-filter", phaseScanFilter), ("transition", phaseTransition), ("transition-batch", phaseTransitionBatch),
    ("claim", phaseClaim), ("claim-batch", phaseClaimBatch), ("claim-concurrent", phaseClaimConcurrent),
]
try phaseLoad()
for (name, body) in bodies where jb_listed(phasesArgument, name) != 0 {
    try body()
    _ = try pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }  // untimed
}
try finalChecks()
_ = try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
var bytes: Int64 = 0
for file in [path, path + "-wal"] {
    var info = stat()
    if stat(file, &info) == 0 { bytes += Int64(info.st_blocks) * 512 }
}
jb_emit_size(bytes)
