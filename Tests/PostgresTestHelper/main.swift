// A child process for the PostgreSQL tests: a scheduler on a PostgreSQL job store that prints
// the id of every job it runs (one line each, written before the handler returns), until it is
// told to stop (SIGTERM: a graceful shutdown) or killed.
//
//   PostgresTestHelper run URL QUEUE
import ChildProcess
import Foundation
import JobScheduler
import JobStore
import JobStorePostgres
import Logging
import ServiceLifecycle

func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

exitWhenOrphaned()
let arguments = CommandLine.arguments
guard arguments.count == 4, arguments[1] == "run" else {
    FileHandle.standardError.write(Data("usage: PostgresTestHelper run URL QUEUE\n".utf8))
    exit(2)
}
do {
    let store = try await PostgresJobStore(url: arguments[2])
    var options = SchedulerOptions(maxConcurrency: 8)
    options.shutdownTimeout = .seconds(5)
    // Its progress through a shutdown on stderr ("scheduler stopping", "scheduler stopped"),
    // then the store's close: a test whose child does not exit says where it stopped.
    var logger = Logger(label: "helper", factory: { StreamLogHandler.standardError(label: $0) })
    logger.logLevel = .info
    var scheduler = Scheduler(backend: store, options: options, logger: logger)
    scheduler.handle(queue: arguments[3]) { context in say(context.job.id.description) }
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(services: [.init(service: scheduler)], gracefulShutdownSignals: [.sigterm], logger: Logger(label: "helper")))
    say("ready")
    try await group.run()
    logger.info("closing the store")
    await store.close()
    logger.info("store closed")
} catch {
    FileHandle.standardError.write(Data("PostgresTestHelper: \(error)\n".utf8))
    exit(1)
}
