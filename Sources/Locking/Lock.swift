#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a pthread mutex, with `Synchronization.Mutex`'s `withLock`: the project's one
/// lock for shared state.
///
/// Why not `Mutex`: on Linux, ThreadSanitizer does not see `Synchronization.Mutex` (a two-thread
/// control incrementing a `Mutex<Int>` is reported as a race, the same under a pthread mutex is
/// silent), so every access it guards — the cache, the read pool, the scheduler's inbox — would
/// be reported, and real races would hide among them. A pthread mutex is what TSan models; the
/// cost is measured equal on this project's hot paths (docs/BENCHMARKS.md).
///
/// `@unchecked Sendable`: the value is only touched inside `withLock`, under the mutex, which
/// lives at a stable heap address.
public final class Lock<Value>: @unchecked Sendable {
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // Only touched under the mutex: the mutex is the exclusivity, so no dynamic checks (they
    // were a tenth of an uncached read's own work, two locks a read).
    @usableFromInline @exclusivity(unchecked) var value: Value

    /// A lock guarding `value`.
    public init(_ value: Value) {
        self.value = value
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if os(Linux)
        // Spin briefly before sleeping, as Synchronization.Mutex does: the sections are short.
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    ///
    /// `@inlinable`: specialised in the caller's module for its value and result, where it was
    /// called as an unspecialised generic from every other module (about 1 % of an uncached
    /// read's instructions, callgrind; docs/BENCHMARKS.md).
    @inlinable @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
