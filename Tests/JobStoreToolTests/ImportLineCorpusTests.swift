import Foundation
import JobStore
import Testing
import TestSupport

@_spi(Fuzzing) import JobStoreLines

@Suite("The import parser against its fuzz corpus, in process")
struct ImportLineCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/import-line")

    @Test("every seed (a real export line) is accepted and restores; its truncations and flipped bits are accepted or refused, never a crash, and nothing is committed")
    func corpus() throws {
        try withTemporaryDirectory { directory in
            let store = try JobRepository(path: directory.path, options: JobStoreOptions(durability: .noSync))
            defer { store.close() }
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
            #expect(files.count >= 20, "the seed corpus of import-line is missing: run Fuzz/make-corpus.py")
            var (runs, accepted) = (0, 0)
            func run(_ line: ArraySlice<UInt8>) {
                if line.withUnsafeBytes({ LineFuzzing.run($0, store: store) }) { accepted += 1 }
                runs += 1
            }
            for file in files {
                let seed = Array(try Data(contentsOf: Self.corpus.appendingPathComponent(file)))
                #expect(seed.withUnsafeBytes { LineFuzzing.run($0, store: store) }, "import-line/\(file) is refused")
                for length in stride(from: 0, to: seed.count, by: 7) { run(seed[..<length]) }
                for index in seed.indices.prefix(300) {
                    for bit in [0, 5] {
                        var flipped = seed
                        flipped[index] ^= 1 << bit
                        run(flipped[...])
                    }
                }
            }
            #expect(runs > 10 * files.count && accepted > 0 && accepted < runs)
            // Every restore was rolled back.
            #expect(try store.counts().values.reduce(0, +) == 0)
            #expect(try store.pipelines().pipelines.isEmpty)
        }
    }
}
