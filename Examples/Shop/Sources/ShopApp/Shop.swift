import Foundation
import Hummingbird
import JobScheduler
import JobStore
import JobStoreDashboard
import Logging
import ServiceLifecycle

/// The shop: its store of jobs, the scheduler that runs them, and its HTTP application, which
/// runs the scheduler as one of its services and mounts the dashboard under `/admin`.
public struct Shop: Sendable {
    /// The jobs, in an LMDB store.
    public let store: JobRepository
    /// What the jobs did (a stand-in for a mail server and a file store): what the tests check.
    public let outbox = Outbox()
    let logger: Logger

    /// Opens (or creates) the store in `storePath`.
    public init(storePath: String, logger: Logger = Logger(label: "shop")) throws {
        store = try JobRepository(path: storePath)
        self.logger = logger
    }

    /// The scheduler with the shop's handlers.
    public func scheduler() -> Scheduler<JobRepository> {
        var scheduler = Scheduler(backend: store, options: SchedulerOptions(maxConcurrency: 8), logger: logger)
        let outbox = outbox
        scheduler.register(SendWelcome.self) { welcome, context in
            await outbox.add("mail to \(welcome.email)")
            context.logger.info("welcome mail sent")
        }
        scheduler.register(MakeThumbnails.self) { job, context in
            let files = job.sizes.map { "\(job.album)-\($0).jpg" }
            await outbox.add("thumbnails \(files.joined(separator: ","))")
            try context.setResult(Thumbnails(files: files))
        }
        scheduler.register(PublishAlbum.self) { job, context in
            let thumbnails = try await context.result(of: "thumbnails", as: Thumbnails.self)
            await outbox.add("published \(job.album) with \(thumbnails?.files.count ?? 0) thumbnails")
        }
        // Every run logged with its duration, whatever the job.
        scheduler.use(ClosureMiddleware { context, next in
            let start = ContinuousClock.now
            try await next(context)
            context.logger.debug("ran", metadata: ["took": "\(ContinuousClock.now - start)"])
        })
        return scheduler
    }

    /// The HTTP application on `host:port` (port 0: any free one), with the scheduler among
    /// its services:
    ///
    /// - `POST /signup?email=…` enqueues a welcome mail: `202 {"job": ID}`;
    /// - `POST /albums?name=…` enqueues the publishing pipeline (thumbnails, then publish):
    ///   `202 {"pipeline": ID}`;
    /// - `GET /jobs/ID`, `GET /pipelines/ID`: `{"state": …}`;
    /// - `/admin`: the JobStore dashboard, read-only.
    public func application(host: String = "127.0.0.1", port: Int = 8080) throws -> some ApplicationProtocol {
        let router = Router()
        let store = store
        router.post("/signup") { request, _ -> Response in
            guard let email = request.uri.queryParameters["email"].map(String.init), email.contains("@") else {
                return Self.json(.badRequest, ["error": "give ?email=someone@example.com"])
            }
            let job = try await store.enqueue(SendWelcome(email: email))
            return Self.json(.accepted, ["job": job.id.description])
        }
        router.post("/albums") { request, _ -> Response in
            guard let album = request.uri.queryParameters["name"].map(String.init), !album.isEmpty else {
                return Self.json(.badRequest, ["error": "give ?name=album"])
            }
            let pipeline = try await store.enqueue(PipelineDefinition(name: "publish-album", steps: [
                try PipelineStep("thumbnails", MakeThumbnails(album: album, sizes: [128, 512])),
                try PipelineStep("publish", PublishAlbum(album: album), dependsOn: ["thumbnails"]),
            ]))
            return Self.json(.accepted, ["pipeline": pipeline.id.description])
        }
        router.get("/jobs/{id}") { _, context -> Response in
            guard let id = try? JobID(parsing: context.parameters.get("id") ?? ""), let job = try store.job(id) else {
                return Self.json(.notFound, ["error": "no such job"])
            }
            return Self.json(.ok, ["state": job.state.description])
        }
        router.get("/pipelines/{id}") { _, context -> Response in
            guard let id = try? PipelineID(parsing: context.parameters.get("id") ?? ""), let pipeline = try store.pipeline(id) else {
                return Self.json(.notFound, ["error": "no such pipeline"])
            }
            return Self.json(.ok, ["state": pipeline.state.description])
        }
        let dashboard = try Dashboard(store: store, options: DashboardOptions(pathPrefix: "/admin"))
        dashboard.addRoutes(to: router.group("/admin"))
        return Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            services: [scheduler()], logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ fields: [String: String]) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// What the shop's jobs did, in order.
public actor Outbox {
    public private(set) var entries: [String] = []
    public init() {}
    func add(_ entry: String) { entries.append(entry) }
}
