import Foundation
import JobCore
import Locking
import Synchronization

/// Jobs finished per 10-second bucket over the last 10 minutes, counted from the store's
/// history: each refresh reads only the events after the last one it counted (a seek, then
/// those entries), so its cost follows the write rate, never the store's size.
final class Throughput: Sendable {
    static let bucketSeconds: Int64 = 10
    static let buckets = 60
    /// The most history entries one refresh reads (a burst larger than that is caught up over
    /// the next refreshes).
    static let maxEntriesPerRefresh = 200_000

    struct State {
        /// Bucket start (µs) → (succeeded, failed).
        var counts: [Int64: (succeeded: Int, failed: Int)] = [:]
        var after: HistoryPosition?
        var started = false
        /// A refresh is reading the history (another one meanwhile returns at once: two would
        /// count the same events).
        var refreshing = false
    }

    private let state = Lock(State())

    /// Counts the history events since the last refresh (at the first, those of the last 10
    /// minutes).
    func refresh(from store: any InspectableStore) async {
        guard let (start, started) = state.withLock({ state -> (HistoryPosition?, Bool)? in
            if state.refreshing { return nil }
            state.refreshing = true
            return (state.after, state.started)
        }) else { return }
        let now = Timestamp.now.microseconds
        let window = Self.bucketSeconds * 1_000_000 * Int64(Self.buckets)
        var counts: [Int64: (succeeded: Int, failed: Int)] = [:]
        var after = start
        var read = 0
        var began = started
        do {
            while read < Self.maxEntriesPerRefresh {
                let page = try await store.history(after: after, since: began ? nil : Timestamp(microseconds: now - window), limit: 10_000)
                began = true
                for entry in page.entries {
                    let bucket = entry.event.at.microseconds - entry.event.at.microseconds % (Self.bucketSeconds * 1_000_000)
                    switch entry.event.kind {
                    case .succeeded: counts[bucket, default: (0, 0)].succeeded += 1
                    case .failed: counts[bucket, default: (0, 0)].failed += 1
                    default: break
                    }
                }
                read += page.entries.count
                after = page.entries.last?.position ?? after
                if page.next == nil { break }
            }
        } catch {
            // A store that cannot be read shows the chart it had; the pages say what is wrong.
        }
        state.withLock { state in
            for (bucket, added) in counts {
                state.counts[bucket, default: (0, 0)].succeeded += added.succeeded
                state.counts[bucket, default: (0, 0)].failed += added.failed
            }
            state.after = after
            state.started = began
            state.refreshing = false
            state.counts = state.counts.filter { $0.key >= now - window - Self.bucketSeconds * 1_000_000 }
        }
    }

    /// The last 10 minutes as an inline SVG line chart: succeeded (green) and failed (red) jobs
    /// per 10 seconds.
    func chartSVG(now: Timestamp = .now) -> String {
        let counts = state.withLock { $0.counts }
        let step = Self.bucketSeconds * 1_000_000
        let last = now.microseconds - now.microseconds % step
        let starts = (0..<Self.buckets).map { last - Int64(Self.buckets - 1 - $0) * step }
        let succeeded = starts.map { counts[$0]?.succeeded ?? 0 }
        let failed = starts.map { counts[$0]?.failed ?? 0 }
        let peak = max(1, (succeeded + failed).max() ?? 1)
        let width = 720.0, height = 160.0, left = 56.0, bottom = 20.0
        func x(_ index: Int) -> Double { left + Double(index) * (width - left - 8) / Double(Self.buckets - 1) }
        func y(_ value: Int) -> Double { (height - bottom) - Double(value) / Double(peak) * (height - bottom - 10) }
        func line(_ values: [Int], _ color: String) -> String {
            let points = values.enumerated().map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }.joined(separator: " ")
            return "<polyline fill=none stroke=\"\(color)\" stroke-width=2 points=\"\(points)\"/>"
        }
        let total = succeeded.reduce(0, +), failures = failed.reduce(0, +)
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" role=img aria-label="jobs finished per 10 seconds">
            <rect x="\(left)" y="10" width="\(width - left - 8)" height="\(height - bottom - 10)" fill="#fff" stroke="#e3e3e3"/>
            <text x="\(left - 6)" y="16" font-size="11" text-anchor="end">\(peak)</text>
            <text x="\(left - 6)" y="\(height - bottom)" font-size="11" text-anchor="end">0</text>
            <text x="\(left)" y="\(height - 4)" font-size="11">−10 min</text>
            <text x="\(width - 8)" y="\(height - 4)" font-size="11" text-anchor="end">now</text>
            \(line(succeeded, "#2e9d3a"))\(line(failed, "#d93025"))
            <text x="\(left + 8)" y="26" font-size="11" fill="#2e9d3a">succeeded \(total) in 10 min (peak \(String(format: "%.0f", Double(succeeded.max() ?? 0) / Double(Self.bucketSeconds)))/s)</text>
            <text x="\(left + 260)" y="26" font-size="11" fill="#d93025">failed \(failures)</text>
            </svg>
            """
    }
}

extension Dashboard {
    /// A pipeline's DAG as inline SVG: one column per layer (a step sits one column after the
    /// deepest step it depends on), each step a box coloured by its job's state, an arrow per
    /// dependency; each box links to its job.
    func dagSVG(_ details: PipelineDetails) -> String {
        let layout = DAGLayout(details)
        let (boxWidth, boxHeight) = (DAGLayout.boxWidth, DAGLayout.boxHeight)
        let position = layout.boxes
        let (width, height) = (layout.width, layout.height)
        let edges = layout.edges.map { points in
            "<polyline points=\"" + points.map { String(format: "%.1f,%.1f", $0.x, $0.y) }.joined(separator: " ")
                + "\" fill=\"none\" stroke=\"#7a8899\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>"
        }
        let boxes = details.steps.compactMap { step -> String? in
            guard let at = position[step.index] else { return nil }
            let job = details.jobs[step.index]
            let name = step.name.count > 20 ? String(step.name.prefix(19)) + "…" : step.name
            return """
                <a href="\(link("/jobs/\(job.id)"))"><g><title>\(html(step.name)): \(job.state)</title>
                <rect x="\(at.x)" y="\(at.y)" width="\(boxWidth)" height="\(boxHeight)" rx="6" fill="\(color(job.state))" stroke="#4b5563"/>
                <text x="\(at.x + 8)" y="\(at.y + 16)" font-size="12" font-weight="600">\(html(name))</text>
                <text x="\(at.x + 8)" y="\(at.y + 31)" font-size="11">\(job.state)</text></g></a>
                """
        }
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" role=img aria-label="pipeline DAG">
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a8899"/></marker></defs>
            \(edges.joined(separator: "\n"))
            \(boxes.joined(separator: "\n"))
            </svg>
            """
    }
}

/// Where a pipeline's DAG draws its boxes (a column per layer, a row per step in it) and its
/// edges: from a box's right side to its dependent's left side; an edge that skips layers
/// crosses each column between them in a lane free of boxes (the source's row where that column
/// has no box there, else below the column's last box), never under another step's box.
struct DAGLayout {
    static let boxWidth = 150.0, boxHeight = 38.0, columnGap = 60.0, rowGap = 16.0, margin = 12.0

    /// Each step's box, top-left corner.
    var boxes: [Int: (x: Double, y: Double)] = [:]
    /// Each edge's points, from the source's right side to the dependent's left side.
    var edges: [[(x: Double, y: Double)]] = []
    var width = 0.0
    var height = 0.0

    init(_ details: PipelineDetails) {
        let layers = details.layers
        let (boxWidth, boxHeight, columnGap, rowGap, margin) = (Self.boxWidth, Self.boxHeight, Self.columnGap, Self.rowGap, Self.margin)
        var column: [Int: Int] = [:]
        for (x, layer) in layers.enumerated() {
            for (row, index) in layer.enumerated() {
                boxes[index] = (margin + Double(x) * (boxWidth + columnGap), margin + Double(row) * (boxHeight + rowGap))
                column[index] = x
            }
        }
        func rowTop(_ row: Int) -> Double { margin + Double(row) * (boxHeight + rowGap) }
        var lowest = Double(layers.map(\.count).max() ?? 1) * (boxHeight + rowGap) - rowGap  // below the boxes
        for step in details.steps {
            guard let from = boxes[step.index], let first = column[step.index] else { continue }
            for dependent in step.dependents {
                guard let to = boxes[dependent], let last = column[dependent] else { continue }
                let start = (x: from.x + boxWidth, y: from.y + boxHeight / 2)
                var points = [start]
                if last > first + 1 {
                    let row = Int(((from.y - margin) / (boxHeight + rowGap)).rounded())
                    for between in (first + 1)..<last {
                        let left = margin + Double(between) * (boxWidth + columnGap)
                        // The source's row if this column has no box there, else under its last box.
                        let lane = row >= layers[between].count ? start.y : rowTop(layers[between].count) - rowGap / 2
                        lowest = max(lowest, lane - margin + rowGap / 2)
                        points.append((left - columnGap / 3, lane))
                        points.append((left + boxWidth + columnGap / 3, lane))
                    }
                }
                points.append((to.x - 2, to.y + boxHeight / 2))
                edges.append(points)
            }
        }
        width = margin * 2 + Double(layers.count) * boxWidth + Double(max(0, layers.count - 1)) * columnGap
        height = margin * 2 + lowest
    }
}
