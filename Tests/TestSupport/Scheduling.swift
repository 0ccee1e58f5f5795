import JobScheduler

/// Runs `scheduler` while `body` runs, then cancels it and waits until it stopped.
public func running<B: SchedulerBackend, R>(_ scheduler: Scheduler<B>, _ body: () async throws -> R) async throws -> R {
    let task = Task { try await scheduler.run() }
    let result: R
    do {
        result = try await body()
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
    task.cancel()
    try await task.value
    return result
}

/// A handler that records `start`, then sleeps until cancelled, recording `cancelled`: a job
/// that only a cancellation (or a shutdown) ends.
public func waitingForCancellation(_ recorder: Recorder) -> JobHandler {
    { context in
        recorder.record("start", context.job)
        do {
            try await Task.sleep(for: .seconds(3600))
        } catch {
            recorder.record("cancelled", context.job)
            throw error
        }
    }
}
