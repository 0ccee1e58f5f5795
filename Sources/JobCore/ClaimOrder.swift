/// The order in which ready jobs are claimed, the same on every backend: the highest
/// ``Job/priority`` first; among equal priorities the earliest ``Job/runAt``; among those the
/// smallest ``Job/id``.
///
/// The id stands for age: the ids a store makes grow with their creation time (milliseconds,
/// then a counter), so among jobs of one priority and runAt the oldest goes first. A job given
/// its own id (``NewJob/id``), or imported with the id it had, is placed by that id, not by its
/// ``Job/createdAt``. The LMDB store's `idx.ready` key is (255 − priority, runAt, id) and
/// PostgreSQL's `jobstore_jobs_ready` index is (queue, priority DESC, run_at, id), so each
/// claim is one read of its index in this order.
public enum ClaimOrder {
    /// Whether `a` is claimed before `b`.
    public static func precedes(_ a: Job, _ b: Job) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.runAt != b.runAt { return a.runAt < b.runAt }
        return a.id < b.id
    }
}
