internal import LMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension JobRepository {
    /// The files in the store's directory whose writes mean a commit: LMDB's data file, and the
    /// byte a write-mapped environment writes after each commit.
    static let commitFiles: Set<String> = ["data.mdb", Environment.commitSignalFile]

    /// A signal after commits of **any** process writing this store (the change feed sees only
    /// this process's): a value after the data file was written, coalesced — several commits
    /// may give one value. For a scheduler to wake when another process enqueues work.
    ///
    /// Built on Linux's inotify (`IN_MODIFY` in the store's directory, of `data.mdb` or of the
    /// commit signal file), read by a thread blocked in `read(2)`: no polling, no CPU while
    /// nothing is written. A store opened with `EnvironmentOptions/writeMap` writes through the
    /// map, which inotify does not see, so it writes a byte to
    /// `LMDB/Environment/commitSignalFile` after each commit instead. Where inotify is
    /// unavailable the stream ends at once (`nil` on the first `next()`), and a caller should
    /// fall back to polling.
    public func commitSignals() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        guard let watcher = FileWatcher(directory: path, files: JobRepository.commitFiles) else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { _ in watcher.stop() }
        if !watcher.start({ continuation.yield() }) { continuation.finish() }
        return stream
    }
}

/// A thread blocked in `read(2)` on an inotify descriptor watching a directory for writes to
/// some of its files. The directory, not the files: a file created after the watch began (the
/// commit signal file of a write-mapped process that opened the store later) is seen too.
final class FileWatcher: Sendable {
    private let descriptor: Int32
    private let watch: Int32
    private let files: Set<String>
    private let stopped = Atomic<Bool>(false)

    init?(directory: String, files: Set<String>) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let wd = inotify_add_watch(fd, directory, UInt32(IN_MODIFY))
        guard wd >= 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
        watch = wd
        self.files = files
    }

    /// Calls `changed` after each batch of events that wrote one of the files, on the watcher's
    /// own thread, until ``stop()``. False if no thread could be started.
    func start(_ changed: @escaping @Sendable () -> Void) -> Bool {
        let started = startThread { [self] in
            // Room for many events; each is a header and the file's name, NUL-padded.
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: MemoryLayout<inotify_event>.alignment)
            defer { buffer.deallocate() }
            while !stopped.load(ordering: .acquiring) {
                let count = read(descriptor, buffer.baseAddress, buffer.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 || stopped.load(ordering: .acquiring) { break }
                if FileWatcher.anyWrites(to: files, in: UnsafeRawBufferPointer(rebasing: buffer[..<count])) { changed() }
            }
            close(descriptor)
        }
        if !started { close(descriptor) }
        return started
    }

    /// Whether the events `read(2)` returned say one of `files` was written — or that the
    /// kernel's queue overflowed (`IN_Q_OVERFLOW`, no name), when any of them may have been.
    static func anyWrites(to files: Set<String>, in events: UnsafeRawBufferPointer) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        while offset + header <= events.count {
            let mask = events.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)  // inotify_event.mask
            let length = Int(events.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))  // inotify_event.len
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { return true }
            let name = UnsafeRawBufferPointer(rebasing: events[(offset + header)..<min(events.count, offset + header + length)])
            if files.contains(String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)) { return true }
            offset += header + length
        }
        return false
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
