import Foundation
import Testing

@_spi(Fuzzing) @testable import JobStore

@Suite("Decoders against the fuzz corpus: real stored values, and each cut short and bit-flipped")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    @Test("every seed decodes; every truncation and every flipped bit of it is decoded or refused, never a crash", arguments: Fuzzing.Target.allCases)
    func corpus(target: Fuzzing.Target) throws {
        let directory = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files.count >= 5, "the seed corpus of \(target.rawValue) is missing: run Fuzz/make-corpus.py")
        var runs = 0
        for file in files {
            let seed = Array(try Data(contentsOf: directory.appendingPathComponent(file)))
            // A seed is a value a real store holds: some decoder of its kind accepts it.
            #expect(seed.withUnsafeBytes { Fuzzing.run(target, $0) }, "\(target.rawValue)/\(file) is refused by every decoder")
            for length in 0..<seed.count {
                seed[..<length].withUnsafeBytes { _ = Fuzzing.run(target, $0) }
                runs += 1
            }
            for index in seed.indices.prefix(512) {
                for bit in [0, 7] {
                    var flipped = seed
                    flipped[index] ^= 1 << bit
                    flipped.withUnsafeBytes { _ = Fuzzing.run(target, $0) }
                    runs += 1
                }
            }
        }
        #expect(runs > files.count)
    }
}
