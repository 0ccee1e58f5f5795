import Foundation
import Testing
import TestSupport

@testable import JobStore

#if canImport(Glibc)
import Glibc
#endif

@Suite("Faults: a full disk", .serialized)
struct FaultTests {
    /// Runs a shell command; its exit status.
    func shell(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test("the disk fills up: a clear error, nothing acknowledged lost, and the store works again once there is room")
    func diskFull() throws {
        let directory = TemporaryDirectory()
        let mountPoint = directory.sub("small-disk")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard shell("mount -t tmpfs -o size=3m tmpfs '\(mountPoint)'") == 0 else {
            // Mounting needs root and a kernel that lets this container mount: say why nothing was tested.
            print("diskFull: skipped — a 3 MiB tmpfs could not be mounted at \(mountPoint) (needs root and mount rights)")
            return
        }
        defer { _ = shell("umount '\(mountPoint)'") }
        let path = mountPoint + "/store"
        var acknowledged: [JobID] = []
        var failure: Error?
        do {
            let store = try JobRepository(path: path, options: JobStoreOptions(durability: .full))
            defer { store.close() }
            for batch in 0..<200 {
                do {
                    let jobs = try store.insert((0..<50).map {
                        NewJob(name: "fill-\(batch)-\($0)", payload: [UInt8](repeating: UInt8($0), count: 1500))
                    })
                    acknowledged += jobs.map(\.id)
                } catch {
                    failure = error
                    break
                }
            }
        }
        let error = try #require(failure as? JobStoreError, "the disk never filled up")
        #expect(error.code == .storage && "\(error)".contains("the disk holding the store is full"), "\(error)")
        #expect(!acknowledged.isEmpty)

        // Room again: the store opens, verifies, has every acknowledged job, and takes writes.
        #expect(shell("mount -o remount,size=64m '\(mountPoint)'") == 0)
        let store = try JobRepository(path: path, options: testOptions)
        defer { store.close() }
        try expectConsistent(store)
        let read = try store.jobs(acknowledged)
        #expect(read.allSatisfy { $0 != nil }, "\(read.filter { $0 == nil }.count) acknowledged jobs are missing")
        try store.insert(NewJob(name: "after"))
        try expectConsistent(store)
    }
}
