/// Backoff of failed attempts: `base · 2^(attempt − 1)`, at most `maximum`, each delay moved by
/// up to ± `jitter` (a fraction) at random, so jobs that failed together do not retry together.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay after the first failed attempt.
    public var base: Duration
    /// The longest delay.
    public var maximum: Duration
    /// The random spread of each delay, 0…1 (0.2: ± 20 %).
    public var jitter: Double

    /// A policy; the default waits 1 s, 2 s, 4 s, … up to an hour, ± 20 %.
    public init(base: Duration = .seconds(1), maximum: Duration = .seconds(3600), jitter: Double = 0.2) {
        self.base = base
        self.maximum = maximum
        self.jitter = min(1, max(0, jitter))
    }

    /// The delay before the attempt after failed attempt `attempt` (1 for the first).
    public func delay(afterAttempt attempt: Int) -> Duration {
        let exponent = Double(max(0, min(attempt - 1, 62)))
        let seconds = min(Self.seconds(maximum), Self.seconds(base) * pow2(exponent))
        let spread = jitter > 0 ? Double.random(in: (1 - jitter)...(1 + jitter)) : 1
        return .microseconds(Int64(max(0, seconds * spread) * 1_000_000))
    }

    private func pow2(_ exponent: Double) -> Double { Double(sign: .plus, exponent: Int(exponent), significand: 1) }

    package static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
