import Foundation
import JobScheduler
import JobStore
import Testing
import TestSupport

/// The admin tool's changes of many jobs at once, run against a store directory and a
/// PostgreSQL URL alike: the same selections, the same counts, dry runs that change nothing.
@Suite("Conformance: the admin tool's bulk changes on LMDB and on PostgreSQL", .serialized)
struct ToolConformanceTests {
    @Test("cancel/retry/delete by filter, requeue --stuck and prune: each dry run counts what the real run then does and changes nothing; the events name the tool",
          arguments: Backend.available)
    func bulkChanges(_ backend: Backend) async throws {
        try await withBackend(backend) { store, location in
            let a = try await store.enqueue((0..<3).map { _ in NewJob(name: "a", queue: "bulk") })
            let b = try await store.enqueue((0..<3).map { _ in NewJob(name: "b", queue: "bulk") })
            _ = try await store.enqueue((0..<2).map { _ in NewJob(name: "o", queue: "other") })
            let pipeline = try await store.enqueue(PipelineDefinition(name: "p", steps: [
                PipelineStep("s1", job: NewJob(name: "s1", queue: "ci")), PipelineStep("s2", job: NewJob(name: "s2", queue: "ci"), dependsOn: ["s1"]),
            ]))
            let future = Timestamp.now.adding(.seconds(3600))
            func snapshot() async throws -> ([JobState: Int], Int) { (try await store.counts(), try await store.countHistory(before: future)) }
            func tool(_ arguments: String...) throws -> [String: Any] {
                let result = try jobstore([arguments[0], location] + arguments.dropFirst() + ["--json"])
                #expect(result.status == 0, "\(arguments): \(result.out) \(result.err)")
                // One JSON line (prune prints one object over several lines).
                let object = try? JSONSerialization.jsonObject(with: Data(result.out.utf8))
                return try #require(object as? [String: Any], "\(arguments): \(result.out) \(result.err)")
            }
            func expectUnchanged(_ before: ([JobState: Int], Int), _ what: String) async throws {
                let after = try await snapshot()
                #expect(after.0 == before.0 && after.1 == before.1, "\(what) changed the store: \(before) → \(after)")
            }

            // Cancel by queue and name: counted first, nothing changed; then done.
            var before = try await snapshot()
            let dryCancel = try tool("cancel", "--queue", "bulk", "--name", "a", "--dry-run")
            #expect(dryCancel["would_change"] as? Int == 3 && dryCancel["selected"] as? Int == 3, "\(dryCancel)")
            try await expectUnchanged(before, "cancel --dry-run")
            let cancelled = try tool("cancel", "--queue", "bulk", "--name", "a")
            #expect(cancelled["changed"] as? Int == 3 && cancelled["skipped"] as? Int == 0, "\(cancelled)")
            for job in a { #expect(try await store.job(job.id)?.state == .cancelled) }
            for job in b { #expect(try await store.job(job.id)?.state == .pending) }
            try await waitUntil("the cancellation in the history", within: .seconds(30)) {
                try await store.events(of: a[0].id).events.last?.kind == .cancelled
            }
            #expect(try await store.events(of: a[0].id).events.last?.actor?.hasPrefix("jobstore tool (") == true)

            // Cancelling the whole queue: the cancelled ones are skipped for their state.
            before = try await snapshot()
            let dryAll = try tool("cancel", "--queue", "bulk", "--dry-run")
            #expect(dryAll["would_change"] as? Int == 3 && dryAll["skipped_state"] as? Int == 3, "\(dryAll)")
            try await expectUnchanged(before, "cancel --queue --dry-run")

            // Retry by state; delete by queue passes over the pipeline's steps.
            let dryRetry = try tool("retry", "--state", "cancelled", "--dry-run")
            #expect(dryRetry["would_change"] as? Int == 3, "\(dryRetry)")
            try await expectUnchanged(before, "retry --dry-run")
            #expect(try tool("retry", "--state", "cancelled")["changed"] as? Int == 3)
            for job in a { #expect(try await store.job(job.id)?.state == .pending) }
            let steps = try tool("delete", "--queue", "ci")
            #expect(steps["changed"] as? Int == 0 && steps["skipped_pipeline_step"] as? Int == 2, "\(steps)")
            #expect(try await store.pipeline(pipeline.id) != nil)

            // requeue --stuck: running jobs whose lease expired, back to pending.
            let claimed = try await store.finish([], claiming: [ClaimRequest(queue: "other", limit: 2)], lease: .milliseconds(1), owner: .random()).claimed
            #expect(claimed.count == 2)
            try await Task.sleep(for: .milliseconds(20))
            before = try await snapshot()
            let dryStuck = try jobstore("requeue", location, "--stuck", "--dry-run")
            #expect(dryStuck.status == 0 && dryStuck.out.contains("would requeue 2 stuck jobs (none changed: --dry-run)"), "\(dryStuck.out) \(dryStuck.err)")
            try await expectUnchanged(before, "requeue --stuck --dry-run")
            let stuck = try jobstore("requeue", location, "--stuck")
            #expect(stuck.status == 0 && stuck.out.contains("requeued 2 stuck jobs"), "\(stuck.out) \(stuck.err)")
            for job in claimed { #expect(try await store.job(job.id)?.state == .pending) }

            // prune: by creation and by finish time, counted first.
            #expect(try tool("cancel", "--queue", "bulk", "--name", "b")["changed"] as? Int == 3)
            _ = try await store.cancelPipeline(pipeline.id)
            before = try await snapshot()
            for selector in ["--older-than", "--finished-before"] {
                let dry = try tool("prune", "--state", "cancelled", selector, "0s", "--dry-run")
                #expect(dry["would_delete"] as? Int == 3 && dry["would_delete_pipelines"] as? Int == 1, "\(selector): \(dry)")
            }
            try await expectUnchanged(before, "prune --dry-run")
            let pruned = try tool("prune", "--state", "cancelled", "--finished-before", "0s")
            #expect(pruned["deleted"] as? Int == 3 && pruned["deleted_pipelines"] as? Int == 1, "\(pruned)")
            for job in b { #expect(try await store.job(job.id) == nil) }
            #expect(try await store.pipeline(pipeline.id) == nil)
            #expect(try await store.counts()[.cancelled] ?? 0 == 0)
            try await expectConsistent(store)
        }
    }
}
