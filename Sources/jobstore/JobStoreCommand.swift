import ArgumentParser

/// The `jobstore` admin tool: inspect and repair a store, run the demo and the benchmarks.
@main
struct JobStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobstore",
        abstract: "Inspect, repair and benchmark JobStore stores (LMDB environments).",
        discussion: """
            Exit codes: 0 success; 1 a failure was found or a runtime error occurred; 2 usage error.
            """,
        subcommands: [Demo.self, Bench.self]
    )
}
