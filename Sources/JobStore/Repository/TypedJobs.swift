// Typed jobs (``JobCore/JobDefinition``) on the embedded store: the synchronous enqueue, and
// the enqueue inside a write transaction, beside the async one every backend has.

extension JobRepository {
    /// Enqueues a job of `job`'s kind (see `JobCore/NewJob/init(_:options:runAt:)`), or
    /// returns the live job holding its unique key: one write transaction.
    @discardableResult
    public func enqueue<J: JobDefinition>(_ job: J, options: JobOptions? = nil, runAt: Timestamp? = nil) throws -> Job {
        let new = try NewJob(job, options: options, runAt: runAt)
        return try write { try $0.insert(new) }
    }

    /// Enqueues jobs of one kind in one write transaction, in order.
    @discardableResult
    public func enqueue<J: JobDefinition>(_ jobs: [J], options: JobOptions? = nil, runAt: Timestamp? = nil) throws -> [Job] {
        let new = try jobs.map { try NewJob($0, options: options, runAt: runAt) }
        return try write { try $0.insert(new) }
    }
}

extension JobTransaction {
    /// Enqueues a job of `job`'s kind in this transaction — with the program's own writes, all
    /// committed or none — or returns the live job holding its unique key.
    ///
    /// ```swift
    /// try store.write { txn in
    ///     let order = try txn.insert(NewJob(name: "audit", payload: Array("order 42".utf8)))
    ///     try txn.enqueue(SendEmail(to: "ada@example.com", subject: "Order \(order.id)"))
    /// }
    /// ```
    @discardableResult
    public func enqueue<J: JobDefinition>(_ job: J, options: JobOptions? = nil, runAt: Timestamp? = nil) throws -> Job {
        try insert(NewJob(job, options: options, runAt: runAt))
    }
}
