// swift-tools-version: 6.1
// A real program on JobStore: a Hummingbird server that enqueues typed jobs and a pipeline from
// HTTP requests, runs the scheduler in the same ServiceGroup, and mounts the dashboard under
// /admin. Depends on JobStore by path, as a program depends on it by URL.
import PackageDescription

let package = Package(
    name: "Shop",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The Postgres trait off: this program runs on the embedded store only.
        .package(name: "JobStore", path: "../..", traits: ["Dashboard"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The application: its jobs, its routes, its services (a library, so the tests build it too).
        .target(
            name: "ShopApp",
            dependencies: [
                .product(name: "JobStore", package: "JobStore"),
                .product(name: "JobScheduler", package: "JobStore"),
                .product(name: "JobStoreDashboard", package: "JobStore"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // `swift run Shop [--store DIR] [--port N]`.
        .executableTarget(name: "Shop", dependencies: ["ShopApp"]),
        .testTarget(
            name: "ShopTests",
            dependencies: [
                "ShopApp",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
    ]
)
