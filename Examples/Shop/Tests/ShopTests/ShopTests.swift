import Foundation
import Hummingbird
import HummingbirdTesting
import JobStore
import ShopApp
import Testing

@Suite("The example shop: HTTP requests enqueue typed jobs and a pipeline, the scheduler in the same ServiceGroup runs them")
struct ShopTests {
    @Test("a signup's welcome mail and an album's pipeline succeed; a second signup of the address is the same job; the dashboard is served under /admin")
    func requestsToJobs() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shop-test-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shop = try Shop(storePath: directory)
        try await shop.application(port: 0).test(.live) { client in
            func json(_ response: TestResponse) throws -> [String: String] {
                try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String])
            }
            func waitFor(_ path: String, _ state: String) async throws {
                let deadline = ContinuousClock.now + .seconds(60)
                while true {
                    let now = try await json(client.execute(uri: path, method: .get))["state"]
                    if now == state { return }
                    if ContinuousClock.now > deadline { throw TestFailure("\(path) is \(now ?? "missing"), not \(state), after 60 s") }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let signup = try await client.execute(uri: "/signup?email=ada@example.com", method: .post)
            #expect(signup.status == .accepted)
            let job = try #require(try json(signup)["job"])
            let again = try await client.execute(uri: "/signup?email=ada@example.com", method: .post)
            // The same live job (its unique key), or — if the first already ran — a new one.
            let first = try shop.store.job(JobID(parsing: job))
            #expect(try json(again)["job"] == job || first?.state == .succeeded)
            #expect(try await client.execute(uri: "/signup?email=nobody", method: .post).status == .badRequest)

            let album = try await client.execute(uri: "/albums?name=summer", method: .post)
            let pipeline = try #require(try json(album)["pipeline"])
            try await waitFor("/jobs/\(job)", "succeeded")
            try await waitFor("/pipelines/\(pipeline)", "succeeded")
            let done = await shop.outbox.entries
            #expect(done.contains("mail to ada@example.com"))
            #expect(done.contains("published summer with 2 thumbnails"), "\(done)")
            let admin = try await client.execute(uri: "/admin", method: .get)
            #expect(admin.status == .ok && String(buffer: admin.body).contains("media"), "the overview lists the queues")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
