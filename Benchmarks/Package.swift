// swift-tools-version: 6.1
// Benchmarks live in their own package so that nothing they need enters the library's graph.
import PackageDescription

let package = Package(
    name: "JobStoreBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "JobStore", path: ".."),
        // The hot-path suite (HotPaths): wall time, throughput and malloc counts per operation.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Durable async writes per second from 1, 2 and 8 tasks: group commit against one
        // transaction per write, nested-transaction against re-run isolation, cohort wait on and off.
        .executableTarget(
            name: "WriteThroughput",
            dependencies: [.product(name: "LMDB", package: "JobStore")],
            path: "Tools/WriteThroughput"
        ),
        // The store's hot paths, one benchmark each (`swift package benchmark`, see docs/BENCHMARKS.md).
        .executableTarget(
            name: "HotPaths",
            dependencies: [.product(name: "JobStore", package: "JobStore"), .product(name: "Benchmark", package: "benchmark")],
            path: "HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
