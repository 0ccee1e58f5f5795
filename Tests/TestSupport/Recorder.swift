import JobStore
import Locking
import Synchronization

/// What handlers did, and a way to wait for it without sleeping: `wait(until:)` returns when a
/// recorded event makes the condition true (or fails after ``hangLimit``, a hang detector — not
/// a timing).
public final class Recorder: Sendable {
    public init() {}

    /// One recorded event.
    public struct Entry: Sendable {
        public var event: String
        public var job: Job
        public var at: Timestamp
    }
    private let state = Lock<(entries: [Entry], waiters: [(id: Int, condition: @Sendable ([Entry]) -> Bool, continuation: CheckedContinuation<Void, Never>)])>(([], []))
    private let nextWaiter = Atomic<Int>(0)

    /// How long a wait may take before it fails as a hang: as long as the scheduler tests'
    /// `waitUntil`. It was 60 s, and the whole suite under ThreadSanitizer on two cores (CI,
    /// 2026-12-06) starved a scheduler test past it: the suite's tests, the multi-process
    /// ones' children among them, share the two cores, and fast tests took 129 s there.
    public static let hangLimit: Duration = .seconds(180)

    public func record(_ event: String, _ job: Job) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.append(Entry(event: event, job: job, at: .now))
            let entries = state.entries
            let (done, waiting) = (state.waiters.filter { $0.condition(entries) }, state.waiters.filter { !$0.condition(entries) })
            state.waiters = waiting
            return done.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    public var entries: [Entry] { state.withLock { $0.entries } }

    public func events(_ event: String) -> [Entry] { entries.filter { $0.event == event } }

    /// Waits until `condition` holds for the recorded entries.
    public func wait(until condition: @escaping @Sendable ([Entry]) -> Bool, _ what: String = "the expected events") async throws {
        let id = nextWaiter.wrappingAdd(1, ordering: .relaxed).oldValue
        let timeout = Task { [self] in
            try await Task.sleep(for: Recorder.hangLimit)
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if condition(state.entries) { return true }
                state.waiters.append((id, condition, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
        timeout.cancel()
        if !condition(entries) { throw TestFailure("waited \(Recorder.hangLimit) for \(what) (a hang)") }
    }

    /// Waits until `count` entries of `event` were recorded.
    public func wait(for count: Int, _ event: String) async throws {
        try await wait(until: { $0.lazy.filter { $0.event == event }.count >= count }, "\(count) '\(event)' events")
    }
}

