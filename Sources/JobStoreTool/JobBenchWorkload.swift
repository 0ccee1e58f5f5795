import JobStore

/// The JobBench data generator (docs/JOBBENCH.md): every store loads identical data,
/// and any job can be regenerated from its number alone.
struct JobBenchWorkload {
    static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    static let baseMicroseconds: Int64 = 1_700_000_000_000_000
    static let drawsPerJob: UInt64 = 40

    /// The standard splitmix64 finalizer.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The k-th output of splitmix64 seeded with `seed`: mix(seed + (k + 1) · golden).
    static func draw(seed: UInt64, _ k: UInt64) -> UInt64 { mix(seed &+ (k &+ 1) &* golden) }

    /// A phase's own random stream (seeds 1001 get, 1002 time-range, 1003 transition, 1004 transition-batch).
    struct Stream {
        let seed: UInt64
        var k: UInt64 = 0
        mutating func next() -> UInt64 {
            defer { k += 1 }
            return JobBenchWorkload.draw(seed: seed, k)
        }
        mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
    }

    /// Draw `d` of job `n` (job n owns outputs 40n … 40n+39 of the seed-42 stream).
    static func jobDraw(_ n: Int, _ d: UInt64) -> UInt64 { draw(seed: 42, UInt64(n) &* drawsPerJob &+ d) }

    static func createdAt(_ n: Int) -> Timestamp { Timestamp(microseconds: baseMicroseconds + 100 * Int64(n)) }

    /// The id: 48-bit milliseconds of createdAt, version 7, the job's index within its
    /// millisecond, variant bits, 62 random bits (draw 0).
    static func id(_ n: Int) -> JobID {
        let micros = createdAt(n).microseconds
        let milliseconds = micros / 1000
        // Jobs are 100 µs apart from a millisecond-aligned base: the index within the millisecond
        // is the number of earlier jobs whose createdAt falls in the same millisecond.
        let firstOfMillisecond = Int((milliseconds * 1000 - baseMicroseconds + 99) / 100)
        return JobID(milliseconds: UInt64(milliseconds), counter: UInt16(n - firstOfMillisecond), random: jobDraw(n, 0))
    }

    /// The state a job is loaded in: d % 20 → 0–1 pending, 2 running, 3–18 succeeded, 19 failed.
    static func loadState(_ n: Int) -> JobState {
        switch jobDraw(n, 2) % 20 {
        case 0, 1: .pending
        case 2: .running
        case 19: .failed
        default: .succeeded
        }
    }

    /// Job `n` as loaded (`state` given for jobs added after the load, which are all pending).
    static func job(_ n: Int, state: JobState? = nil) -> Job {
        let created = createdAt(n)
        var payload = [UInt8](repeating: 0, count: 256)
        payload.withUnsafeMutableBytes { buffer in
            for i in 0..<32 {
                buffer.storeBytes(of: jobDraw(n, 5 + UInt64(i)).littleEndian, toByteOffset: 8 * i, as: UInt64.self)
            }
        }
        let state = state ?? loadState(n)
        let id = id(n)
        return Job(
            id: id, name: "job-" + String(n).leftPadded(to: 8), queue: "q\(jobDraw(n, 3) % 8)", tenant: "t\(jobDraw(n, 4) % 16)",
            state: state, priority: UInt8(jobDraw(n, 1) % 10), createdAt: created, updatedAt: created, runAt: created,
            attempts: 0, maxAttempts: 25,
            lease: state == .running ? Lease(expiresAt: created.adding(.seconds(86_400 * 365 * 100)), owner: OwnerToken(high: 0, low: UInt64(n))) : nil,
            payload: payload)
    }

    /// Job `n` as an insert (for the phases that add jobs after the load: pending, chosen id and time).
    static func newJob(_ n: Int) -> NewJob {
        let job = job(n, state: .pending)
        return NewJob(
            name: job.name, queue: job.queue, payload: job.payload, priority: job.priority, runAt: job.runAt,
            maxAttempts: job.maxAttempts, tenant: job.tenant, id: job.id, createdAt: job.createdAt)
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
