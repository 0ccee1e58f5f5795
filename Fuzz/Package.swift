// swift-tools-version: 6.1
// The fuzzers live in their own package: they are built only with libFuzzer's flags
// (scripts/fuzz.sh), and nothing they need enters the library's graph.
import PackageDescription

let package = Package(
    name: "JobStoreFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "JobStore", path: ".."),
    ],
    targets: [
        // One libFuzzer target for every decoder of stored data and the import's line parser;
        // JOBSTORE_FUZZ_TARGET picks which (job-record, pipeline-record, events, keys,
        // meta-records, import-line).
        .executableTarget(
            name: "JobStoreFuzzer",
            dependencies: [
                "CFuzz", .product(name: "JobStore", package: "JobStore"), .product(name: "JobStoreLines", package: "JobStore"),
            ],
            path: "Sources/JobStoreFuzzer"
        ),
        // The declaration of libFuzzer's driver.
        .target(name: "CFuzz", path: "Sources/CFuzz"),
    ],
    swiftLanguageModes: [.v6]
)
