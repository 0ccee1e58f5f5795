// swift-tools-version: 6.1
// JobBench on GRDB.swift: what a Swift team would pick instead of JobStore. Its own package, so
// neither the library nor the other benchmarks ever build GRDB. Built and run by
// scripts/jobbench-peers.sh beside JobStore and the C peers (docs/BENCHMARKS.md).
import PackageDescription

let package = Package(
    name: "JobBenchGRDB",
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // The C peers' generator, clock, output and checks (../jobbench.h), shared as they are:
        // the same data byte for byte, the same JSON lines.
        .target(name: "JobBenchC", path: "Sources/JobBenchC"),
        .executableTarget(
            name: "jobbench-grdb",
            dependencies: ["JobBenchC", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Sources/jobbench-grdb"
        ),
    ],
    // Swift 5 mode: the shared C code's globals (N, total) are read from the worker threads as the C peers read them.
    swiftLanguageModes: [.v5]
)
