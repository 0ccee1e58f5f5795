import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension JobRepository {
    /// A signal after commits of **any** process writing this store (the change feed sees only
    /// this process's): a value after the data file was written, coalesced — several commits
    /// may give one value. For a scheduler to wake when another process enqueues work.
    ///
    /// Built on Linux's inotify (`IN_MODIFY` on `data.mdb`), read by a thread blocked in
    /// `read(2)`: no polling, no CPU while nothing is written. A store opened with
    /// ``EnvironmentOptions/writeMap`` writes through the map, which inotify does not see:
    /// there, and where inotify is unavailable, the stream ends at once (`nil` on the first
    /// `next()`), and a caller should fall back to polling. For the same reason, commits of
    /// another process that opened the store with `writeMap` give no value here.
    public func commitSignals() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        guard !options.environment.writeMap, let watcher = FileWatcher(path: path + "/data.mdb") else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { _ in watcher.stop() }
        if !watcher.start({ continuation.yield() }) { continuation.finish() }
        return stream
    }
}

/// A thread blocked in `read(2)` on an inotify descriptor watching one file for writes.
final class FileWatcher: Sendable {
    private let descriptor: Int32
    private let watch: Int32
    private let stopped = Atomic<Bool>(false)

    init?(path: String) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let wd = inotify_add_watch(fd, path, UInt32(IN_MODIFY))
        guard wd >= 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
        watch = wd
    }

    /// Calls `changed` after each batch of writes, on the watcher's own thread, until ``stop()``.
    /// False if no thread could be started.
    func start(_ changed: @escaping @Sendable () -> Void) -> Bool {
        let started = startThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !stopped.load(ordering: .acquiring) {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 || stopped.load(ordering: .acquiring) { break }
                changed()
            }
            close(descriptor)
        }
        if !started { close(descriptor) }
        return started
    }

    /// Ends the thread: removing the watch makes the kernel send `IN_IGNORED`, which wakes its `read`.
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        inotify_rm_watch(descriptor, watch)
    }
}

/// Runs `body` on a new detached thread; false if none could be created.
private func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { context in
        guard let context else { return nil }
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
        return nil
    }, context)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(context).release()
        return false
    }
    pthread_detach(thread)
    return true
}
