import Instrumentation

/// How a job carries the trace context of the code that enqueued it to the run of its handler,
/// so that one trace joins, say, the HTTP request that enqueued a job and the job's run.
///
/// A ``NewJob`` remembers the task's `ServiceContext` when it is made (``NewJob/traceContext``);
/// the store writes that context into the job's ``Job/headers`` with its instrument as it
/// inserts the job (the process's bootstrapped one unless the store was given another), and the
/// scheduler extracts it from them with its tracer when it runs the job: the run's span is a
/// child of the span that enqueued the job. Nothing is written without a context or with the
/// no-op instrument.
public enum JobTraceContext {
    /// Writes `context`'s trace context into `headers` with `instrument` (keys and values are the
    /// instrument's, e.g. W3C `traceparent`).
    public static func inject(_ context: ServiceContext, into headers: inout [String: String], using instrument: any Instrument) {
        instrument.inject(context, into: &headers, using: HeaderInjector())
    }

    /// Reads the trace context in `headers` into `context` with `instrument`.
    public static func extract(from headers: [String: String], into context: inout ServiceContext, using instrument: any Instrument) {
        instrument.extract(headers, into: &context, using: HeaderExtractor())
    }

    /// What a store does as it inserts `new`: its captured context written into `headers` with
    /// `instrument` (`nil`: the process's bootstrapped one). Nothing without a context or with
    /// the no-op instrument.
    @usableFromInline static func capture(_ new: NewJob, into headers: inout [String: String], using instrument: (any Instrument)?) {
        guard let context = new.traceContext.context else { return }
        let instrument = instrument ?? InstrumentationSystem.instrument
        guard !(instrument is NoOpInstrument) else { return }
        inject(context, into: &headers, using: instrument)
    }

    struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }

    struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }
}

/// The `ServiceContext` a ``NewJob`` was made in: not part of its identity (two new jobs that
/// differ only by it are equal).
public struct CapturedTraceContext: Sendable, Hashable {
    /// The context, or `nil` when the job was made outside any.
    public var context: ServiceContext?

    /// `context` (the current task's by default).
    public init(_ context: ServiceContext? = .current) { self.context = context }

    public static func == (lhs: Self, rhs: Self) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}
}
