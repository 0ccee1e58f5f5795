#if Dashboard
import ArgumentParser
import Foundation
import JobStore
import JobStoreDashboard

/// `jobstore serve PATH|URL`: the web dashboard.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the web dashboard of a store (read-only unless --allow-writes).",
        discussion: """
            Opens the store (a directory, or a postgres:// URL) read-only and serves an overview (counts, queues, throughput, live by Server-Sent \
            Events), jobs and pipelines with paging, each job's fields, errors and timeline, each pipeline's DAG, and \
            /metrics for Prometheus. With --allow-writes the pages offer retry, cancel, requeue and prune, each \
            needing the token printed at start (or JOBSTORE_DASHBOARD_TOKEN): send it as the X-JobStore-Token \
            header, or open /login?token=… once in a browser.
            """)

    @OptionGroup var store: StoreOptions
    @Option(parsing: .unconditional, help: "The address to listen on (loopback unless you say otherwise).")
    var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "The port (0 picks a free one; the address is printed).")
    var port = 8080
    @Flag(help: "Offer actions (retry, cancel, requeue, prune), each needing the token.")
    var allowWrites = false

    func validate() throws {
        guard Validation.enabled else { return }
        if port < 0 || port > 65_535 { throw ValidationError("--port must be 0…65535, not \(port)") }
    }

    func run() async throws {
        try await OpenedStore.with(store, writable: allowWrites) { opened in try await serve(opened.store) }
    }

    func serve(_ jobs: any AdministrableStore) async throws {
        var options = DashboardOptions(allowWrites: allowWrites)
        if allowWrites {
            let token = ProcessInfo.processInfo.environment["JOBSTORE_DASHBOARD_TOKEN"] ?? Dashboard.randomToken()
            if token.count < 16 { throw ValidationError("JOBSTORE_DASHBOARD_TOKEN must have at least 16 characters") }
            options.token = token
        }
        let host = self.host, allowWrites = self.allowWrites, token = options.token
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        if allowWrites && !loopback {
            FileHandle.standardError.write(Data("""
                jobstore: warning: --allow-writes on \(host): the dashboard speaks plain HTTP, so the token (and the cookie \
                it sets) travels in clear text to anyone who can reach \(host == "0.0.0.0" || host == "::" ? "any interface of this machine" : host). \
                Keep it on 127.0.0.1 behind a TLS proxy, or drop --allow-writes.

                """.utf8))
        }
        do {
            try await Dashboard.serve(store: jobs, host: host, port: port, options: options) { port in
                print("serving \(jobs.locationDescription) at http://\(host):\(port)/ (\(allowWrites ? "actions allowed with the token" : "read-only"))")
                if let token { print("token: \(token)  (header X-JobStore-Token, or open http://\(host):\(port)/login?token=\(token))") }
                fflush(nil)
            }
        } catch where "\(error)".contains("Address already in use") || "\(error)".contains("errno: 98") {
            throw CommandFailure("port \(port) on \(host) is in use by another program; give --port another (0 picks a free one)")
        } catch where "\(error)".contains("Cannot assign requested address") || "\(error)".contains("errno: 99") {
            throw CommandFailure("\(host) is not an address of this machine; give --host one of its addresses (127.0.0.1 by default)")
        }
    }
}
#endif
