// LD_PRELOAD shim that lets valgrind 3.19 run `jobstore` (scripts/instructions.sh).
//
// libdispatch's dispatch_main(), which runs the main queue of an `async` main, parks the main
// thread in `sigsuspend` on a mask in read-only memory; valgrind's wrapper of rt_sigsuspend
// writes into the mask (it takes its own signals out) and dies with SIGSEGV ("VALGRIND
// INTERNAL ERROR ... Faulting address" at the mask). This sigsuspend passes a writable copy.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, sizeof(long));
}
