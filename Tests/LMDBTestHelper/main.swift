// A child process for the LMDB tests: it writes to a store while the test kills it, or grows
// the map of a store the test has open.
import ChildProcess
import LMDB

#if canImport(Glibc)
import Glibc
#endif

let numbers = DatabaseDefinition<UInt64Codec, BytesCodec>(name: "numbers")

func fail(_ message: String) -> Never {
    let line = "LMDBTestHelper: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

exitWhenOrphaned()
let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: LMDBTestHelper (write-loop|grow) PATH [COUNT]") }
let path = arguments[2]

do {
    switch arguments[1] {
    case "write-loop":
        // Writes batches of 10 keys forever, printing each committed batch's last key once it is
        // durable. The parent kills us with SIGKILL at a random moment.
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 1 << 20), databases: [numbers])
        let db = try env.database(numbers)
        var next: UInt64 = 0
        let payload = [UInt8](repeating: 0xAB, count: 300)
        while true {
            let first = next
            try env.write { txn in
                for key in first..<first + 10 { try txn.put(db, key, payload + withUnsafeBytes(of: key) { Array($0) }) }
            }
            next += 10
            let line = "\(next - 1)\n"
            _ = line.withCString { write(1, $0, strlen($0)) }
        }
    case "grow":
        // Writes COUNT large values, growing the map far past its start, then exits.
        let count = arguments.count > 3 ? Int(arguments[3]) ?? 100 : 100
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 1 << 20), databases: [numbers])
        let db = try env.database(numbers)
        let payload = [UInt8](repeating: 0x5A, count: 64 * 1024)
        for key in 0..<UInt64(count) {
            try env.write { txn in try txn.put(db, 1_000_000 + key, payload) }
        }
        print(try env.info().mapSize)
    default:
        fail("unknown command \(arguments[1])")
    }
} catch {
    fail("\(error)")
}
