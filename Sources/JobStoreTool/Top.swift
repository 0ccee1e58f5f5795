import ArgumentParser
import Foundation
import JobStore
import JobStoreText

#if canImport(Glibc)
import Glibc
#endif

/// `jobstore top PATH|URL`: a live view of jobs per state and per queue, with rates.
struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live view of jobs per state and per queue, with rates over a sliding window, refreshed in place; q quits.",
        discussion: """
            On a terminal the view replaces the screen until you press q (or Ctrl-C). From a pipe it \
            prints one view per refresh; with --json, one JSON object per line.
            """)

    @OptionGroup var store: StoreOptions
    @Option(parsing: .unconditional, help: "Refresh interval (e.g. 1s, 500ms; at least 100ms).")
    var interval = "1s"
    @Option(parsing: .unconditional, help: "Rates are the change over this much time, or since the start if shorter (e.g. 10s, 1m).")
    var window = "10s"
    @Option(parsing: .unconditional, help: "Stop after this many refreshes (default: until q or interrupted).")
    var iterations: Int?

    func validate() throws {
        guard Validation.enabled else { return }
        if try parseDuration(interval) < .milliseconds(100) {
            throw ValidationError("--interval must be at least 100ms, not \(interval)")
        }
        if try parseDuration(window) < parseDuration(interval) {
            throw ValidationError("--window (\(window)) must be at least --interval (\(interval))")
        }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    }

    /// What one refresh read.
    struct Sample {
        var at: ContinuousClock.Instant
        /// LMDB's last transaction id (`nil` on PostgreSQL).
        var transaction: Int?
        var counts: [JobState: Int]
        var queues: [QueueSummary]
        var expiredLeases: Int

        /// When the oldest ready job of any queue became ready.
        var oldestReady: Timestamp? { queues.compactMap(\.oldestReadyAt).min() }

        func finished(_ queue: String) -> Int {
            let counts = queues.first { $0.name == queue }?.counts ?? [:]
            return (counts[.succeeded] ?? 0) + (counts[.failed] ?? 0) + (counts[.cancelled] ?? 0)
        }
    }

    func run() async throws {
        try await OpenedStore.with(store) { opened in try await watch(opened) }
    }

    func watch(_ opened: OpenedStore) async throws {
        let every = try parseDuration(interval)
        let span = try parseDuration(window)
        let jobs = opened.store
        let screen = !store.json && Terminal.isTerminal ? LiveScreen() : nil
        defer { screen?.restore() }
        var samples: [Sample] = []  // the window's samples, oldest first
        var round = 0
        while true {
            let now = ContinuousClock.now
            let sample = Sample(
                at: now, transaction: try opened.lmdb?.environmentInfo().lastTransactionID, counts: try await jobs.counts(),
                queues: try await jobs.queues(), expiredLeases: try await jobs.expiredLeaseCount())
            samples.append(sample)
            samples.removeAll { now - $0.at > span + every / 2 }  // the newest is never older than now
            let text = store.json ? try jsonLine(json(samples)) : view(samples, screen: screen, location: opened.location)
            if let screen {
                screen.draw(text)
            } else {
                print(text)
                fflush(nil)  // each view whole and at once, also into a pipe (stdout is block-buffered there)
            }
            round += 1
            if let iterations, round >= iterations { break }
            if let screen {
                if screen.waitForQuit(every) { break }
            } else {
                try await Task.sleep(for: every)
            }
        }
    }

    /// The change per second of `value` between the window's first sample and its last; `nil`
    /// until there are two.
    func rate(_ samples: [Sample], _ value: (Sample) -> Int) -> Double? {
        guard let first = samples.first, let last = samples.last, samples.count > 1 else { return nil }
        return Double(value(last) - value(first)) / max((last.at - first.at).seconds, 0.001)
    }

    func view(_ samples: [Sample], screen: LiveScreen?, location: String) -> String {
        guard let sample = samples.last else { return "" }
        let over = samples.count > 1 ? "rates over the last " + Readable.duration(sample.at - samples[0].at) : "rates from the next refresh"
        func perSecond(_ value: Double?) -> String { value.map { String(format: "%+.1f", $0) } ?? "" }
        var header = "\(location) — \(Timestamp.now.description.prefix(19))Z"
        if let transaction = sample.transaction {
            header += " — transaction \(transaction)"
            if let commits = rate(samples, { $0.transaction ?? 0 }) { header += String(format: ", %.1f commits/s", commits) }
        }
        var lines = [header, ""]
        var states = Table("state", "jobs", "change/s")
        states.states = [0]
        for state in JobState.allCases {
            states.add([state.description, (sample.counts[state] ?? 0).grouped, perSecond(rate(samples) { $0.counts[state] ?? 0 })])
        }
        states.add(["total", sample.counts.values.reduce(0, +).grouped, ""])
        lines += states.render().split(separator: "\n").map(String.init)
        lines.append("")
        let wait = sample.oldestReady.map { "the oldest ready job has waited " + waited(since: $0) } ?? "no job is ready"
        lines.append("\(wait); \(sample.expiredLeases.grouped) expired lease\(sample.expiredLeases == 1 ? "" : "s")"
            + (sample.expiredLeases > 0 ? " (a worker stopped: a scheduler rescues them)" : ""))
        lines.append("")
        // The busiest queues first, as many as fit the window.
        let queues = sample.queues.sorted {
            (($0.counts[.pending] ?? 0) + ($0.counts[.running] ?? 0), $1.name) > (($1.counts[.pending] ?? 0) + ($1.counts[.running] ?? 0), $0.name)
        }
        let room = screen.map { max(1, $0.height - lines.count - 4) } ?? queues.count
        var table = Table("queue", "paused", "pending", "running", "failed", "longest wait", "done/s")
        table.shrinkable = [0]
        for queue in queues.prefix(room) {
            let wait = queue.oldestReadyAt.map { waited(since: $0) }
            table.add([
                queue.name, queue.pausedAt == nil ? "-" : "paused", (queue.counts[.pending] ?? 0).grouped, (queue.counts[.running] ?? 0).grouped,
                (queue.counts[.failed] ?? 0).grouped, wait ?? "-",
                rate(samples) { $0.finished(queue.name) }.map { String(format: "%.1f", $0) } ?? "",
            ])
        }
        if !queues.isEmpty { lines += table.render().split(separator: "\n").map(String.init) }
        if queues.count > room { lines.append("(\(queues.count - room) more queue\(queues.count - room == 1 ? "" : "s"): `jobstore queues`)") }
        lines.append("")
        lines.append((screen == nil ? "" : "q quits · ") + "refreshed every \(interval) · \(over)")
        return lines.joined(separator: "\n")
    }

    /// One line of `top --json`.
    struct Line: Encodable {
        struct QueueLine: Encodable {
            var name: String
            var paused: Bool
            var counts: [String: Int]
            var longestWaitSeconds: Double?
            var finishedPerSecond: Double?
        }
        var transaction: Int?
        var commitsPerSecond: Double?
        var expiredLeases: Int
        var longestReadyWaitSeconds: Double?
        var states: [String: Int]
        /// Each state's change per second over the window (after the first refresh).
        var changePerSecond: [String: Double]?
        var queues: [QueueLine]
    }

    func json(_ samples: [Sample]) -> Line? {
        guard let sample = samples.last else { return nil }
        let now = Timestamp.now
        return Line(
            transaction: sample.transaction, commitsPerSecond: sample.transaction == nil ? nil : rate(samples) { $0.transaction ?? 0 }, expiredLeases: sample.expiredLeases,
            longestReadyWaitSeconds: sample.oldestReady.map { seconds(since: $0, now: now) }, states: byName(sample.counts),
            changePerSecond: samples.count > 1
                ? Dictionary(uniqueKeysWithValues: JobState.allCases.map { state in (state.description, rate(samples) { $0.counts[state] ?? 0 } ?? 0) })
                : nil,
            queues: sample.queues.map { queue in
                Line.QueueLine(
                    name: queue.name, paused: queue.pausedAt != nil, counts: byName(queue.counts),
                    longestWaitSeconds: queue.oldestReadyAt.map { seconds(since: $0, now: now) },
                    finishedPerSecond: rate(samples) { $0.finished(queue.name) })
            })
    }
}

/// The terminal while `top` runs: the alternate screen (the shell's screen comes back on exit),
/// keys read one at a time without echo, and both undone on exit, on q, and on Ctrl-C.
final class LiveScreen {
    /// The terminal's settings before, in memory of our own: tcgetattr writes the C library's
    /// whole `struct termios`, which AddressSanitizer caught overrunning a Swift global
    /// `termios` (allocated 57 bytes there; glibc writes 60).
    nonisolated(unsafe) private static let saved = LiveScreen.termiosBuffer()
    nonisolated(unsafe) private static var keysChanged = false

    private static func termiosBuffer() -> UnsafeMutablePointer<termios> {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        return bytes.assumingMemoryBound(to: termios.self)
    }

    init() {
        if isatty(0) == 1, tcgetattr(0, LiveScreen.saved) == 0 {
            let raw = LiveScreen.termiosBuffer()
            defer { raw.deallocate() }
            UnsafeMutableRawPointer(raw).copyMemory(from: LiveScreen.saved, byteCount: 256)
            raw.pointee.c_lflag &= ~tcflag_t(ICANON | ECHO)
            LiveScreen.keysChanged = tcsetattr(0, TCSANOW, raw) == 0
        }
        write("\u{1B}[?1049h\u{1B}[?25l")  // alternate screen, cursor hidden
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal) { number in
                LiveScreen.undo()
                _exit(128 + number)
            }
        }
    }

    /// The window's height in lines (24 when unknown).
    var height: Int {
        guard let rows = Terminal.window?.ws_row, rows > 0 else { return 24 }
        return Int(rows)
    }

    func draw(_ text: String) {
        let width = Terminal.width ?? 80
        // Home, then each line cut to the width and cleared to its end, then the rest cleared.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).prefix(height).map { line in
            line.count > width ? String(line.prefix(width)) : String(line)
        }
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    /// Waits up to `duration` for a key; true if it was q (or Q).
    func waitForQuit(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(max(1, ((deadline - ContinuousClock.now).seconds * 1000).rounded(.up)))
            guard poll(&descriptor, 1, milliseconds) > 0 else { continue }
            var byte: UInt8 = 0
            guard read(0, &byte, 1) == 1 else { Thread.sleep(forTimeInterval: (deadline - ContinuousClock.now).seconds); return false }
            if byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") { return true }
        }
        return false
    }

    func restore() { LiveScreen.undo() }

    /// Async-signal-safe: tcsetattr and write only.
    private static func undo() {
        if keysChanged { tcsetattr(0, TCSANOW, saved) }
        let text = "\u{1B}[?25h\u{1B}[?1049l"
        _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
    }

    private func write(_ text: String) {
        _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
    }
}
