// swift-tools-version: 6.1
// Benchmarks live in their own package so that nothing they need enters the library's graph.
import PackageDescription

let package = Package(
    name: "JobStoreBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "JobStore", path: ".."),
    ],
    targets: [
        // Durable async writes per second from 1, 2 and 8 tasks: group commit against one
        // transaction per write, nested-transaction against re-run isolation, cohort wait on and off.
        .executableTarget(
            name: "WriteThroughput",
            dependencies: [.product(name: "LMDB", package: "JobStore")],
            path: "WriteThroughput"
        ),
    ],
    swiftLanguageModes: [.v6]
)
