#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex with a condition variable whose timed waits use the monotonic clock.
///
/// `@unchecked Sendable`: the pthread objects live at stable heap addresses and are only
/// touched through pthread calls, which are thread-safe.
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal; the mutex must be held.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal until `deadline` (monotonic nanoseconds); the mutex must be held.
    /// Returns false on timeout.
    func wait(untilNanoseconds deadline: UInt64) -> Bool {
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &time) == 0
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// A readers–writer lock that prefers writers, so a map resize is not starved by a stream of readers.
///
/// Every transaction of an environment holds it shared; growing the map holds it exclusive,
/// because `mdb_env_set_mapsize` may only run while no transaction is active in the process.
/// A thread never takes it shared twice (see ``ThreadState``): with writer preference a second
/// shared acquisition behind a waiting writer would deadlock.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() {
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        #if os(Linux)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
}

/// What the current OS thread holds of one environment: how deep it is in transactions
/// (it holds the environment's resize lock shared while > 0) and whether it has a write transaction.
///
/// Stored in a pthread key per environment; the value is packed into the pointer's bits, so it
/// costs no allocation.
final class ThreadState: @unchecked Sendable {
    private let key: pthread_key_t

    init() {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
    }
    deinit { pthread_key_delete(key) }

    private var raw: UInt {
        get { UInt(bitPattern: pthread_getspecific(key)) }
        set { pthread_setspecific(key, UnsafeRawPointer(bitPattern: newValue)) }
    }

    /// Number of transaction scopes this thread is inside (read or write).
    var depth: Int {
        get { Int(raw >> 1) }
        set { raw = (UInt(newValue) << 1) | (raw & 1) }
    }

    /// Whether this thread is inside a write transaction of the environment.
    var isWriting: Bool {
        get { raw & 1 == 1 }
        set { raw = (raw & ~1) | (newValue ? 1 : 0) }
    }
}
