internal import LMDB

/// The counter changes of one transaction, named without building their meta keys (those are
/// built on the stack, once per changed counter at the commit, not per changed job), and on the
/// per-job path without hashing: a slot per state, and per queue a slot per state, the queue
/// found by comparing its name with the last one used (a transaction touches few queues).
struct CounterDeltas {
    /// One delta per job state.
    struct PerState {
        var waiting: Int64 = 0, pending: Int64 = 0, running: Int64 = 0
        var succeeded: Int64 = 0, failed: Int64 = 0, cancelled: Int64 = 0

        subscript(state: JobState) -> Int64 {
            get {
                switch state {
                case .waiting: waiting
                case .pending: pending
                case .running: running
                case .succeeded: succeeded
                case .failed: failed
                case .cancelled: cancelled
                }
            }
            set {
                switch state {
                case .waiting: waiting = newValue
                case .pending: pending = newValue
                case .running: running = newValue
                case .succeeded: succeeded = newValue
                case .failed: failed = newValue
                case .cancelled: cancelled = newValue
                }
            }
        }
    }

    struct Queue {
        let name: String
        var deltas = PerState()
    }

    private var states = PerState()
    private var queues: [Queue] = []
    private var lastQueue = 0
    /// Pipelines per state (rarer: a dictionary will do).
    var pipelines: [PipelineState: Int64] = [:]

    mutating func add(_ delta: Int64, _ state: JobState, queue: String) {
        states[state] += delta
        if lastQueue >= queues.count || queues[lastQueue].name != queue {
            if let index = queues.firstIndex(where: { $0.name == queue }) {
                lastQueue = index
            } else {
                queues.append(Queue(name: queue))
                lastQueue = queues.count - 1
            }
        }
        queues[lastQueue].deltas[state] += delta
    }

    /// Forgets the per-state and per-queue changes (they were recounted); keeps the pipelines'.
    mutating func dropJobCounters() {
        states = PerState()
        queues = []
    }

    /// Hands each changed counter's meta key (its bytes, built on the stack) and its delta to
    /// `body` (zeros left out).
    func forEachChange(_ body: (_ key: UnsafeRawBufferPointer, _ delta: Int64) throws -> Void) throws {
        for state in JobState.allCases where states[state] != 0 {
            try StringCodec.withEncoded(MetaKey.stateCounter(state)) { try body($0, states[state]) }
        }
        for queue in queues {
            for state in JobState.allCases where queue.deltas[state] != 0 {
                try MetaKey.withQueueCounter(queue.name, state) { try body($0, queue.deltas[state]) }
            }
        }
        for (state, delta) in pipelines where delta != 0 {
            try StringCodec.withEncoded(MetaKey.pipelineCounter(state)) { try body($0, delta) }
        }
    }
}
