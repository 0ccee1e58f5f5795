// What every test helper process does first: die with the test that started it.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private var parentAtStart: pid_t = 0

/// Exits this process (status 3) as soon as its parent is gone. A helper that a failed test
/// never stopped would otherwise live on — and, holding the output pipe `swift test` reads,
/// keep `swift test` from ever ending (what CI's "hangs" were, 2026-11-28). A thread polls the
/// parent's pid every 200 ms (Swift cannot call the variadic prctl(PR_SET_PDEATHSIG)).
public func exitWhenOrphaned() {
    parentAtStart = getppid()
    var thread = pthread_t()
    _ = pthread_create(&thread, nil, { _ in
        // A parent of 1 at the start: the test died before this process got here.
        while getppid() == parentAtStart && parentAtStart != 1 { usleep(200_000) }
        _exit(3)
    }, nil)
}
