/// Waits for `task` to finish, but at most `limit`: true if it finished, false if the time ran
/// out first (the task goes on, unwaited). For shutdown paths that must end even when something
/// they wait on does not — e.g. postgres-nio 1.33's `PostgresClient.run()`, which can stay
/// suspended after its cancellation while its pool reconnects (vapor/postgres-nio#599).
public func finished<Success: Sendable, Failure: Error>(_ task: Task<Success, Failure>, within limit: Duration) async -> Bool {
    let waiter = Lock<CheckedContinuation<Bool, Never>?>(nil)
    let timer = Lock<Task<Void, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        waiter.withLock { $0 = continuation }
        timer.withLock {
            $0 = Task {
                try? await Task.sleep(for: limit)
                waiter.withLock { $0.take() }?.resume(returning: false)
            }
        }
        Task {
            _ = await task.result
            waiter.withLock { $0.take() }?.resume(returning: true)
            timer.withLock { $0 }?.cancel()
        }
    }
}
