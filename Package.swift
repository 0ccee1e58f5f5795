// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "JobStore",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "JobCore", targets: ["JobCore"]),
        .library(name: "LMDB", targets: ["LMDB"]),
        .library(name: "JobStore", targets: ["JobStore"]),
        .library(name: "JobScheduler", targets: ["JobScheduler"]),
        .library(name: "JobStoreDashboard", targets: ["JobStoreDashboard"]),
        .library(name: "JobStorePostgres", targets: ["JobStorePostgres"]),
        // The admin tool's export/import lines: no public API (the tool reaches it as its package),
        // only the fuzzer's entry point (`@_spi(Fuzzing)`), for Fuzz/.
        .library(name: "JobStoreLines", targets: ["JobStoreLines"]),
        .executable(name: "jobstore", targets: ["jobstore"]),
    ],
    traits: [
        .trait(
            name: "Dashboard",
            description: "`jobstore serve`, the web dashboard, on Hummingbird (adds swift-nio and Hummingbird to the tool's build: minutes on a first build)."),
        .trait(
            name: "Postgres",
            description: "The tool on PostgreSQL too: its inspection commands on a postgres:// URL and `bench --backend postgres` (adds postgres-nio, swift-crypto and swift-nio-ssl to the tool's build: about a minute more on a first build here)."),
        .default(enabledTraits: ["Dashboard", "Postgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // The documentation (`swift package generate-documentation`; scripts/docs.sh): a plugin, built only when asked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // The dashboard only (JobStoreDashboard): a program that embeds JobStore never builds it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // The PostgreSQL backend only (JobStorePostgres): a program that embeds JobStore never builds it.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The C library: Debian's liblmdb-dev, found through pkg-config.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // The project's lock for shared state (a pthread mutex ThreadSanitizer can see).
        .target(name: "Locking"),
        // A safe, typed Swift face of LMDB. Knows nothing of jobs.
        .target(
            name: "LMDB",
            dependencies: [
                "CLMDB", "Locking",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // CRC32C, the checksum that ends every job, pipeline and step record (C: SSE 4.2's
        // crc32 instruction where the CPU has it).
        .target(name: "CChecksum"),
        // What every backend and everything above them share, with no storage in it: the model
        // (jobs, pipelines, events, queues, schedules), the rules of their states, the one error
        // type, and the protocols the scheduler, the admin tool and the dashboard see a store
        // through. Neither LMDB nor PostgreSQL: building it (or the scheduler) needs neither.
        .target(name: "JobCore", dependencies: ["Locking", .product(name: "Instrumentation", package: "swift-distributed-tracing")]),
        // Jobs and their persistence on LMDB: records, indexes, counters, cache, change feed.
        .target(
            name: "JobStore",
            dependencies: [
                "JobCore", "JobStoreText", "LMDB", "Locking", "CChecksum", .product(name: "Logging", package: "swift-log"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]),
        // The in-process scheduler: runs a store's jobs and pipelines with the program's handlers.
        // It sees the store through the core's `SchedulerBackend` protocol, so it builds without
        // either backend.
        .target(
            name: "JobScheduler",
            dependencies: [
                "JobCore", "Locking",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // What people type and read (durations, times, byte counts, payloads), shared by the
        // admin tool and the dashboard so both accept and print the same.
        .target(name: "JobStoreText", dependencies: ["JobCore"]),
        // The JSON of jobs, pipelines and events that the admin tool prints, exports and imports,
        // and the import's line parser (a library of its own so the fuzzer can reach it).
        .target(name: "JobStoreLines", dependencies: ["JobStore", "JobStoreText"]),
        // The web dashboard (`jobstore serve`, or mounted in a program's own Hummingbird app):
        // reads a store, read-only unless told otherwise. Its own module, so neither JobStore nor
        // JobScheduler depends on Hummingbird.
        .target(
            name: "JobStoreDashboard",
            dependencies: [
                "JobCore", "JobStoreText", "Locking",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The scheduler's second backend: jobs and pipelines in PostgreSQL, for programs that run
        // on several machines. Its own module, so neither JobStore nor JobScheduler depends on
        // postgres-nio.
        .target(
            name: "JobStorePostgres",
            dependencies: [
                "JobCore", "JobStoreText", "Locking",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        // The admin tool (bench and demo are subcommands). It sees the store through `JobStore`
        // (and runs jobs through `JobScheduler` in `demo` and `bench --burndown`).
        .executableTarget(
            name: "jobstore",
            dependencies: [
                "JobStore",
                "JobScheduler",
                "JobStoreText",
                "JobStoreLines",
                .target(name: "JobStoreDashboard", condition: .when(traits: ["Dashboard"])),
                .target(name: "JobStorePostgres", condition: .when(traits: ["Postgres"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/JobStoreTool"
        ),
        // A child process for the crash and multi-process tests.
        // What each helper does first: exit when the test process that started it is gone.
        .target(name: "ChildProcess", path: "Tests/ChildProcess"),
        .executableTarget(
            name: "LMDBTestHelper",
            dependencies: ["LMDB", "ChildProcess"],
            path: "Tests/LMDBTestHelper"
        ),
        .target(name: "TestSupport", dependencies: ["JobStore", "JobScheduler", "Locking"], path: "Tests/TestSupport"),
        // The core's rules, alone: no store, no LMDB (the planners are pure functions).
        .testTarget(name: "JobCoreTests", dependencies: ["JobCore"]),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB", "Locking", "LMDBTestHelper", "TestSupport"]),
        .executableTarget(
            name: "JobStoreTestHelper",
            dependencies: ["JobStore", "JobScheduler", "ChildProcess"],
            path: "Tests/JobStoreTestHelper"
        ),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "CChecksum", "Locking", "JobStoreTestHelper", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "JobSchedulerTests",
            dependencies: [
                "JobScheduler", "JobStore", "Locking", "JobStoreTestHelper", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // Every Swift sample of README.md and docs/, compiled (generated by scripts/doc-samples.py).
        .testTarget(
            name: "DocSampleTests",
            dependencies: [
                "JobStore", "LMDB", "JobScheduler", "JobStoreDashboard", "JobStorePostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The dashboard's routes through Hummingbird's test client (no socket).
        .testTarget(
            name: "JobStoreDashboardTests",
            dependencies: [
                "JobStoreDashboard", "JobStore", "Locking", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        // A scheduler process on a PostgreSQL store, for the multi-process tests.
        .executableTarget(
            name: "PostgresTestHelper",
            dependencies: [
                "JobStorePostgres", "JobScheduler", "JobStore", "ChildProcess",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PostgresTestHelper"
        ),
        // The behaviour tests of the store and the scheduler, written once and run against both
        // backends (LMDB always; PostgreSQL when JOBSTORE_POSTGRES_URL names a server).
        .testTarget(
            name: "ConformanceTests",
            dependencies: [
                "JobScheduler", "JobStore", "JobStorePostgres", "Locking", "TestSupport", "PostgresTestHelper", "jobstore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]),
        // Runs the built `jobstore` binary against stores it makes.
        .testTarget(name: "JobStoreToolTests", dependencies: ["JobStore", "JobStoreLines", "LMDB", "Locking", "jobstore", "JobStoreTestHelper", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
