import Locking
import Synchronization

/// Delivers committed changes to subscribers as `AsyncStream`s.
///
/// Overflow policy: each subscriber has a buffer of `capacity` events. When it is full, newer
/// changes are dropped (never older ones, never blocking the writer), counted, and the
/// subscriber receives one `.overflow(missed:)` event before the next change that fits.
/// Changes are published by the committing thread right after the commit, in commit order
/// (whatever thread committed): those of one transaction together and in order. Each carries
/// its transaction id (``JobChange/transaction``). Only this process's commits are published.
final class ChangeFeed: Sendable {
    private final class Subscriber: Sendable {
        let continuation: AsyncStream<JobFeedEvent>.Continuation
        let missed = Atomic<Int>(0)
        init(_ continuation: AsyncStream<JobFeedEvent>.Continuation) { self.continuation = continuation }
    }

    private let subscribers = Lock<[Int: Subscriber]>([:])
    private let nextID = Atomic<Int>(0)
    private let hasSubscribers = Atomic<Bool>(false)

    /// A new subscription; it ends when the consumer stops iterating or the store closes.
    func subscribe(capacity: Int) -> AsyncStream<JobFeedEvent> {
        let (stream, continuation) = AsyncStream<JobFeedEvent>.makeStream(bufferingPolicy: .bufferingOldest(max(2, capacity)))
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        subscribers.withLock { $0[id] = Subscriber(continuation) }
        hasSubscribers.store(true, ordering: .releasing)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.subscribers.withLock { subscribers in
                subscribers[id] = nil
                self.hasSubscribers.store(!subscribers.isEmpty, ordering: .releasing)
            }
        }
        return stream
    }

    /// Publishes the changes of one committed transaction.
    func publish(_ changes: [JobChange]) {
        deliver(changes.count) { .change(changes[$0]) }
    }

    /// Publishes the progress reports of one committed transaction.
    func publish(_ reports: [ProgressReport]) {
        deliver(reports.count) { .progress(reports[$0]) }
    }

    /// Delivers `count` events (`event(i)`) to every subscriber, each in turn, dropping what a
    /// full buffer cannot take (counted, then announced by one `.overflow`).
    private func deliver(_ count: Int, _ event: (Int) -> JobFeedEvent) {
        guard count > 0, hasSubscribers.load(ordering: .acquiring) else { return }
        let current = subscribers.withLock { Array($0.values) }
        for subscriber in current {
            for index in 0..<count {
                let missed = subscriber.missed.load(ordering: .relaxed)
                if missed > 0 {
                    if case .dropped = subscriber.continuation.yield(.overflow(missed: missed)) {
                        subscriber.missed.add(1, ordering: .relaxed)
                        continue
                    }
                    subscriber.missed.subtract(missed, ordering: .relaxed)
                }
                if case .dropped = subscriber.continuation.yield(event(index)) {
                    subscriber.missed.add(1, ordering: .relaxed)
                }
            }
        }
    }

    /// Ends every subscription.
    func finish() {
        for subscriber in subscribers.withLock({ subscribers in defer { subscribers = [:] }; return Array(subscribers.values) }) {
            subscriber.continuation.finish()
        }
    }
}
