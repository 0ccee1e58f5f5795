import Foundation
import Locking
import Synchronization

/// Helpers shared by the test targets.

/// A fresh temporary directory for one test, removed when the value is dropped.
public final class TemporaryDirectory {
    public let path: String

    public init(_ name: String = #function) {
        let base = FileManager.default.temporaryDirectory.path
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = "\(base)/lmdb-tests-\(safe)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func sub(_ name: String) -> String { "\(path)/\(name)" }
}

/// A built helper executable (a sibling of the test bundle in the build directory).
public func helperExecutable(_ name: String) throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    }
    for candidate in [directory, directory.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw TestFailure("\(name) not found next to \(directory.path); build it with `swift build`")
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body` on a fresh OS thread and waits for it, failing after `seconds` (a hang detector).
@discardableResult
public func onThread<T: Sendable>(timeout seconds: Double = 30, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, Error>?
    let thread = Thread {
        result = Result { try body() }
        semaphore.signal()
    }
    thread.start()
    guard semaphore.wait(timeout: .now() + seconds) == .success, let result else {
        throw TestFailure("the thread did not finish within \(seconds) s (a hang)")
    }
    return try result.get()
}

/// Runs `body` on a thread of its own and awaits it without holding a thread of the
/// concurrency pool: for a blocking call (a socket read) in an async test, which would
/// otherwise take one of the pool's few threads (two on a two-core machine) from the code
/// under test, such as a server's stream, and stall both until the call's own timeout.
/// Past `timeout` (seconds) the wait fails as a hang; the thread is left to end by itself.
public func onOwnThread<T: Sendable>(timeout seconds: Double = 60, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let pending = Mutex<CheckedContinuation<T, Error>?>(continuation)
        let resume = { @Sendable (result: Result<T, Error>) in pending.withLock { $0.take() }?.resume(with: result) }
        Thread { resume(Result { try body() }) }.start()
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            resume(.failure(TestFailure("the thread did not finish within \(seconds) s (a hang)")))
        }
    }
}

/// Sends `signal` to a child and waits for it to exit, without blocking a thread of the
/// concurrency pool (`Process.waitUntilExit` would hold one for as long as the child lives);
/// after `limit` the child is killed and the wait fails, naming it. Returns its exit status.
@discardableResult
public func stop(_ child: Process, with signal: Int32 = SIGTERM, within limit: Duration = .seconds(60)) async throws -> Int32 {
    kill(child.processIdentifier, signal)
    return try await exitStatus(of: child, within: limit, "of signal \(signal)")
}

/// Waits for a child to exit by itself, without blocking a thread of the concurrency pool;
/// after `limit` it is killed and the wait fails, naming it. Returns its exit status.
@discardableResult
public func exitStatus(of child: Process, within limit: Duration = .seconds(120), _ context: String = "") async throws -> Int32 {
    let deadline = ContinuousClock.now + limit
    while child.isRunning {
        if ContinuousClock.now > deadline {
            kill(child.processIdentifier, SIGKILL)
            throw TestFailure("\(child.executableURL?.lastPathComponent ?? "the child") (pid \(child.processIdentifier)) did not exit within \(limit) \(context); killed")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    return child.terminationStatus
}

/// Runs an executable (a helper's name, or a path) and kills it with SIGKILL after `seconds`
/// if it still runs; returns the lines it printed in full (a line cut by the kill is dropped:
/// only whole lines are acknowledgements) and whether the kill cut it short.
public func runKilled(_ executable: String, _ arguments: [String], after seconds: Double) throws -> (lines: [String], killed: Bool) {
    let child = Process()
    child.executableURL = try helperExecutable(executable)
    child.arguments = arguments
    let output = Pipe()
    child.standardOutput = output
    child.standardError = FileHandle.nullDevice
    try child.run()
    Thread.sleep(forTimeInterval: seconds)
    kill(child.processIdentifier, SIGKILL)
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    return (text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), child.terminationReason == .uncaughtSignal)
}

/// ``runKilled(_:_:after:)`` for a child that must still run when killed: its whole lines.
public func killedChildOutput(_ executable: String, _ arguments: [String], after seconds: Double) throws -> [String] {
    let (lines, killed) = try runKilled(executable, arguments, after: seconds)
    guard killed else { throw TestFailure("\(executable) exited by itself before it was killed") }
    return lines
}

/// Runs `body` with a fresh temporary directory, removed afterwards.
public func withTemporaryDirectory<R>(_ name: String = #function, _ body: (TemporaryDirectory) throws -> R) rethrows -> R {
    let directory = TemporaryDirectory(name)
    return try withExtendedLifetime(directory) { try body(directory) }
}

/// Runs async `body` with a fresh temporary directory, removed afterwards.
public func withTemporaryDirectory<R>(_ name: String = #function, _ body: (TemporaryDirectory) async throws -> R) async rethrows -> R {
    let directory = TemporaryDirectory(name)
    let result = try await body(directory)
    withExtendedLifetime(directory) {}
    return result
}

/// Runs the built `jobstore` binary; returns its exit status, stdout and stderr.
@discardableResult
public func jobstore(_ arguments: String..., stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    try jobstore(arguments, stdin: stdin)
}

/// ``jobstore(_:stdin:)`` with the arguments in an array.
@discardableResult
public func jobstore(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    try run(try helperExecutable("jobstore"), arguments, stdin: stdin)
}

/// Runs a program; returns its exit status, stdout and stderr.
public func run(_ executable: URL, _ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let stdin {
        let input = Pipe()
        process.standardInput = input
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    try process.run()
    // Both pipes read at once, before waiting: read one after the other, a child that fills
    // the second (64 KiB of stderr) while the first is read would block, and so would we.
    let errData = Lock(Data())
    let errDone = DispatchSemaphore(value: 0)
    Thread {
        let data = err.fileHandleForReading.readDataToEndOfFile()
        errData.withLock { $0 = data }
        errDone.signal()
    }.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.withLock { $0 }, as: UTF8.self))
}

/// Starts `jobstore serve` with `arguments` (a store, then options such as `--port 0`): the
/// process (kill it with SIGKILL when done: a test thread's blocked SIGTERM is inherited), the
/// port it listens on and the line it printed ("serving … at http://127.0.0.1:PORT/ …").
public func startServe(_ arguments: [String], environment: [String: String] = [:]) throws -> (process: Process, port: String, said: String) {
    let server = Process()
    server.executableURL = try helperExecutable("jobstore")
    server.arguments = ["serve"] + arguments
    server.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe()
    server.standardOutput = output
    try server.run()
    let said = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    // The first line's port ("serving … at http://127.0.0.1:PORT/ …"; a token line may follow).
    guard let port = said.split(separator: "\n").first?.split(separator: ":").last?.split(separator: "/").first.map(String.init) else {
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        throw TestFailure("jobstore serve printed no address: \(said)")
    }
    return (server, port, said)
}
