// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "JobStore",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LMDB", targets: ["LMDB"]),
        .library(name: "JobStore", targets: ["JobStore"]),
        .executable(name: "jobstore", targets: ["jobstore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // The C library: Debian's liblmdb-dev, found through pkg-config.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // A safe, typed Swift face of LMDB. Knows nothing of jobs.
        .target(
            name: "LMDB",
            dependencies: [
                "CLMDB",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Jobs and their persistence: records, indexes, counters, cache, change feed.
        .target(name: "JobStore", dependencies: ["LMDB", .product(name: "Logging", package: "swift-log")]),
        // The admin tool (bench and demo are subcommands). It sees the store through `JobStore` alone.
        .executableTarget(
            name: "jobstore",
            dependencies: [
                "JobStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/JobStoreTool"
        ),
        // A child process for the crash and multi-process tests.
        .executableTarget(
            name: "LMDBTestHelper",
            dependencies: ["LMDB"],
            path: "Tests/LMDBTestHelper"
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB", "LMDBTestHelper", "TestSupport"]),
        .executableTarget(
            name: "JobStoreTestHelper",
            dependencies: ["JobStore"],
            path: "Tests/JobStoreTestHelper"
        ),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "JobStoreTestHelper", "TestSupport"], resources: [.copy("Fixtures")]),
        // Runs the built `jobstore` binary against stores it makes.
        .testTarget(name: "JobStoreToolTests", dependencies: ["JobStore", "LMDB", "jobstore", "JobStoreTestHelper", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
