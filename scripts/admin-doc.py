#!/usr/bin/env python3
"""Regenerates docs/ADMIN.md from real runs of the built `jobstore` (debug build).

    swift build && python3 scripts/admin-doc.py
"""
import json, os, shlex, shutil, subprocess, time

J = '.build/debug/jobstore'
S = '/tmp/admin-demo'
P = '/tmp/admin-pipelines'
SCHEDULED = P  # the demo registers two schedules
for path in [S, P, '/tmp/admin-backup', '/tmp/admin-import', '/tmp/admin-import-pipelines', '/tmp/admin-import-json', '/tmp/admin-backup-json']:
    shutil.rmtree(path, ignore_errors=True)
for path in ['/tmp/admin-jobs.jsonl', '/tmp/admin-pipelines.jsonl']:
    if os.path.exists(path):
        os.remove(path)
subprocess.run([J, 'bench', '--jobs', '1000', '--durability', 'relaxed', '--dir', S, '--phases', 'insert-single,claim'],
               check=True, capture_output=True)
# A store with two finished pipelines (one succeeded, one failed): the demo's.
subprocess.run([J, 'demo', '--dir', P], check=True, capture_output=True)


def run(args, stdin=None, maxlines=40):
    p = subprocess.run([J] + args, capture_output=True, text=True, input=stdin)
    lines = p.stdout.rstrip('\n').split('\n')
    if len(lines) > maxlines:
        lines = lines[:maxlines] + ['…']
    text = '\n'.join(lines)
    if p.stderr.strip():
        text += ('\n' if text else '') + p.stderr.strip()
    return f"```console\n$ jobstore {shlex.join(args)}\n{text}\n```\nexit {p.returncode}\n"


def first(state):
    out = subprocess.run([J, 'jobs', 'list', S, '--state', state, '--limit', '1', '--json'], capture_output=True, text=True).stdout
    return json.loads(out)['jobs'][0]['id']


pending, failed, running = first('pending'), first('failed'), first('running')
pipelines = json.loads(subprocess.run([J, 'pipelines', 'list', P, '--json'], capture_output=True, text=True).stdout)['pipelines']
nightly = next(p['id'] for p in pipelines if p['name'] == 'nightly-import')
step_job = json.loads(subprocess.run([J, 'pipelines', 'show', P, nightly, '--json'], capture_output=True, text=True).stdout)['steps'][3]['job']
sections = []


def add(title, description, *blocks):
    sections.append(f"## {title}\n\n{description}\n\n" + "\n".join(blocks))


sections.append("""## LMDB or PostgreSQL

Every command takes an LMDB store's directory. These also take a PostgreSQL URL
(`postgres://user@host:port/database`, as `PostgresJobStore` takes it) and give the same output
for the same content: `stats` (without the LMDB environment and databases: the store's size in
PostgreSQL instead), `jobs list`, `jobs show`, `jobs history` (`--follow` polls once a second),
`pipelines list`, `pipelines show`, `queues` (and `queues pause|resume|limit|unlimit`),
`schedules`, `top` (without LMDB's commits per second), `serve` (its actions and prune too), `verify` (the counters and pipelines
against a recount: the database keeps rows and indexes itself), the changes by id — `cancel`, `retry`,
`requeue`, `delete` and `pipelines delete` of jobs and pipelines — and by filter (`--state`, `--queue`,
`--name`, `--created-before`, `--finished-before`), `requeue --stuck` and `prune`, each with `--dry-run`
(the change made and rolled back, or for prune counted: nothing changed); PostgreSQL records the
changes in its history as the tool's, as LMDB does. `export` and `import` take either, so a store
moves between the backends in both directions: every job with its timeline, every pipeline
(rebuilt around its steps' jobs), queue controls and schedules. The tool never creates or
migrates a schema but for `import --create`: a URL naming a database without a job store is an
error and changes nothing. The others (`backup`, `readers`, `delete --damaged`, `bench`'s cache
phases) work on LMDB stores and say so when given a URL; `readers`, `backup` and
`delete --damaged` are about LMDB's files and will stay LMDB's.
""")
add("stats", "Jobs per state and per queue, pipelines per state, expired leases and the longest wait; on LMDB also the environment (map, used space, last transaction, readers) and every named database (LMDB's `mdb_stat` figures); on PostgreSQL the store's size (its tables with their indexes). `--json` prints the same as one object.",
    run(['stats', S]))
add("jobs list", "Jobs by creation time, answered from the indexes (`idx.state_created` with `--state`, `idx.created` otherwise), a page at a time. Filters: `--state`, `--queue`, `--since`, `--until` (`2026-11-23`, `2026-11-23T10:00:00Z`, or a duration ago such as `2h`); `--newest-first`; `--limit`; `--after CURSOR` continues where the previous page ended.",
    run(['jobs', 'list', S, '--state', 'pending', '--limit', '5']),
    run(['jobs', 'list', S, '--state', 'pending', '--limit', '1', '--json'], maxlines=60))
search_next = json.loads(subprocess.run([J, 'jobs', 'list', P, '--payload-contains', 'linux', '--examine-at-most', '3', '--limit', '3', '--json'],
                                        capture_output=True, text=True).stdout)['next']
add("jobs list: search", "Three more filters are checked on each job of the index range (the state and `--since`/`--until` pick the range): `--name`, `--payload-contains TEXT` (the payload's bytes contain the text's UTF-8; case matters) and `--error-contains TEXT` (an error message of any attempt). They look at every job of the range; `--examine-at-most N` bounds a page's work — it then ends after N jobs however few matched, says how many it looked at, and `--after` goes on from there (what the dashboard's search does, 20,000 a page). The bulk commands (`cancel`, `retry`, `requeue`, `delete`) take the same filters.",
    run(['jobs', 'list', P, '--error-contains', 'schema']),
    run(['jobs', 'list', P, '--payload-contains', 'linux', '--examine-at-most', '3', '--limit', '3']), run(['jobs', 'list', P, '--payload-contains', 'linux', '--examine-at-most', '3', '--limit', '3', '--after', search_next]))
add("jobs errors", "The commonest last error messages of the jobs that failed for good since `--since` (1h by default; their finish time, from `idx.finished`, pipeline steps' jobs included), each with how many jobs, when the newest failed and its id; `--top` (10), `--examine-at-most` (the newest 10,000 failed jobs; it says when there were more). List a group's jobs with `jobs list --state failed --error-contains TEXT`.",
    run(['jobs', 'errors', P]), run(['jobs', 'errors', P, '--json']))
add("jobs show", "Every field of one job; the payload as text when it is printable UTF-8, otherwise as hex; the error history; the timeline (its newest 32 events: each with its time, the state it left the job in, its attempts, and what it adds — who claimed it and until when, when a retry runs, the error). `--json` includes the timeline.",
    run(['jobs', 'show', S, pending], maxlines=20), run(['jobs', 'show', P, step_job], maxlines=30))
add("jobs history", "Every job's events in commit order, from the `history` database (a seek, then a page in key order: never a scan): what to read after an incident. `--since` (a time or a duration ago) or `--after POSITION` (the first column; the last line of a page says where to go on); `--kind` keeps some kinds (`inserted, claimed, lease-extended, succeeded, failed, retried, rescued, cancelled, snoozed, released, requeued, unblocked, changed, deleted, pruned`); `--limit` (1,000); `--follow` keeps printing as any process commits (woken by inotify on the data file); `--json` prints one object per line. The scheduler keeps a week of history (`SchedulerOptions.historyRetention`); `prune --history-before` deletes older events by hand.",
    run(['jobs', 'history', P, '--limit', '8']),
    run(['jobs', 'history', P, '--kind', 'failed,rescued,retried', '--limit', '3', '--json']))
add("pipelines list", "Pipelines by creation time, a page at a time: with `--state` (running, succeeded, failed, cancelled) from `idx.pipeline_state_created`, otherwise from the `pipelines` database (ids are time-ordered). `--newest-first`, `--limit`, `--after CURSOR` as for jobs. The store here is the demo's (`jobstore demo --dir PATH`).",
    run(['pipelines', 'list', P]), run(['pipelines', 'list', P, '--state', 'failed', '--json'], maxlines=25))
add("pipelines show", "One pipeline: its record, the step table (each step's job, state, tries, how many dependencies it still waits for, and from its job's timeline how long its last run waited once ready and how long it ran), and its DAG drawn layer by layer — layer k holds the steps whose longest chain of dependencies has k steps, each with its state and the steps it waits for. `--dot` prints the DAG for Graphviz (`… --dot | dot -Tsvg > p.svg`), `--json` the pipeline with its steps. `jobs show` of a step's job names its pipeline and step, and a step cancelled by the pipeline says why in its error history.",
    run(['pipelines', 'show', P, nightly]), run(['pipelines', 'show', P, nightly, '--dot']),
    run(['jobs', 'show', P, step_job], maxlines=20))
add("queues", "Every queue that has jobs or is paused: its jobs per state (the counters), whether it is paused, and how long its longest-waiting ready job has waited. `queues pause PATH QUEUE` stops every scheduler on the store from claiming the queue's jobs (running ones finish; jobs can still be enqueued) until `queues resume`; the schedulers see the commit at once. `queues limit PATH QUEUE --starts N --per D` allows at most N job starts per period across every process (a token bucket in the store, updated by each claim); `queues unlimit` removes it. A queue the store does not know (no jobs, not paused, no limit) is refused, so a typo is not taken for success; `--create` sets one up for jobs to come. Each change is an event of the history, with who made it.",
    run(['queues', P]), run(['queues', 'pause', P, 'mail']), run(['queues', 'limit', P, 'reports', '--starts', '100', '--per', '1m']),
    run(['queues', P, '--json'], maxlines=30), run(['queues', 'resume', P, 'mail']), run(['queues', 'unlimit', P, 'reports']),
    run(['queues', 'pause', P, 'mial']), run(['queues', 'pause', P, 'next-month', '--create']), run(['queues', 'resume', P, 'next-month']),
    run(['jobs', 'history', P, '--kind', 'queue-paused,queue-limited,queue-resumed,queue-unlimited']))
add("schedules", "The periodic jobs schedulers registered in the store: timing, time zone, the job they enqueue, the missed-tick policy, the last tick any process enqueued and the next one. `schedules run-now PATH NAME` enqueues a schedule's job to run at once (one more job; the ticks go on as before), as its scheduler registered it — the store keeps the job with the schedule — recorded in the history as the tool's; `--dry-run` says what it would enqueue. A schedule registered by a version of JobStore before the job was kept is refused until its scheduler starts again. The demo's scheduler registered these two with `schedule(\"nightly-import\", cron: \"0 3 * * *\", timeZone: \"Europe/Paris\", missedTicks: .runOnce, …)` and `schedule(\"weekly-report\", cron: \"@weekly\", …)`.",
    run(['schedules', SCHEDULED]), run(['schedules', SCHEDULED, '--json'], maxlines=30),
    run(['schedules', 'run-now', SCHEDULED, 'weekly-report', '--dry-run']), run(['schedules', 'run-now', SCHEDULED, 'weekly-report']),
    run(['schedules', 'run-now', SCHEDULED, 'weekly-reprot']))
# A scheduler at work (a demo of 300,000 jobs), seen by another process from its heartbeat.
BUSY = '/tmp/admin-busy'
shutil.rmtree(BUSY, ignore_errors=True)
busy_demo = subprocess.Popen([J, 'demo', '--dir', BUSY, '--jobs', '300000'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
busy_run = None
for _ in range(900):
    time.sleep(0.1)
    if os.path.exists(os.path.join(BUSY, 'data.mdb')):
        out = subprocess.run([J, 'workers', BUSY, '--json'], capture_output=True, text=True).stdout
        if out.strip().startswith('[') and any(w['running'] for w in json.loads(out)):
            busy_run = run(['workers', BUSY], maxlines=14)
            busy_json = run(['workers', BUSY, '--json'], maxlines=30)
            break
busy_demo.wait()
add("workers", "Who runs what: every running scheduler, from the heartbeat it writes every `SchedulerOptions.heartbeatInterval` (5 s) and deletes when it stops — its id, host, pid, since when, its last heartbeat (`GONE` after three missed: it died or stalls, and its jobs come back when their leases expire), its handlers busy of how many, its queues — and every job its handlers run, with how long. Here a demo's scheduler at work, seen from another process; once it stopped, none.",
    *([busy_run, busy_json] if busy_run else []), run(['workers', BUSY]))
add("verify", "Every record decodes; every record has exactly its index entries and every index entry belongs to a record; every counter equals a recount; every pipeline agrees with its steps' jobs (counts, state, remaining dependencies, each step's job pointing back); every timeline and history event reads, and each timeline belongs to a job and ends in its state. It walks the store in chunks (`--chunk-size`, 10,000) so a live store's file does not grow; a suspected problem is checked again in a fresh snapshot before it is reported. Exit 0 when clean, 1 with every problem listed (with the job ids).",
    run(['verify', S]), run(['verify', S, '--json']))
add("backup", "A consistent hot copy (`mdb_env_copy2`) into a new or empty directory, safe while other processes write; `--compact` leaves out free pages.",
    run(['backup', S, '/tmp/admin-backup', '--compact']), run(['backup', S, '/tmp/admin-backup']))
add("export and import", "`export` writes JSON lines (one job per line, payloads in base64, times in µs), then one line per pipeline (`\"kind\": \"pipeline\"`, its steps with their jobs' ids), then one per paused or rate-limited queue (`\"kind\": \"queue\"`) and per schedule (`\"kind\": \"schedule\"`, with its last tick); `--state` exports only the jobs in that state that are no pipeline step. Each job carries its timeline, which `import` puts back before the `inserted` event it records; the store's history does not travel. `--output` replaces an existing file only with `--force`. `import` streams its input (a file or `-` for stdin) and commits it in batches, printing a line after each committed batch (at once, also into a pipe: an interrupted import says what is safe; `--json` prints them as objects); a pipeline's counts, state and remaining dependencies are recounted from its jobs. `import` into a directory that holds no store needs `--create`.",
    run(['export', S, '--state', 'failed'], maxlines=2),
    run(['export', S, '--output', '/tmp/admin-jobs.jsonl']),
    run(['import', '/tmp/admin-import', '/tmp/admin-jobs.jsonl', '--batch-size', '400', '--create']),
    run(['export', P, '--output', '/tmp/admin-pipelines.jsonl']),
    run(['import', '/tmp/admin-import-pipelines', '/tmp/admin-pipelines.jsonl', '--create']),
    run(['import', '/tmp/admin-import-pipelines', '/tmp/admin-pipelines.jsonl', '--dry-run']))
add("prune", "Deletes finished jobs (succeeded, failed or cancelled) created longer ago than a duration (`--older-than`), or that finished before a time (`--finished-before`, a duration ago or a date: retention by age since finishing, from `idx.finished`), in bounded batches, and the finished pipelines in that state with their steps' jobs (a step's job is never deleted alone); `--history-before` deletes the history's older events (alone, or with a job prune); `--dry-run` only counts.",
    run(['prune', P, '--state', 'failed', '--finished-before', '0s', '--dry-run']),
    run(['prune', P, '--history-before', '1h', '--dry-run']),
    run(['prune', S, '--state', 'succeeded', '--older-than', '30d', '--dry-run']),
    run(['prune', S, '--state', 'succeeded', '--older-than', '30d']))
add("serve", "The web dashboard (docs/DASHBOARD.md): read-only unless `--allow-writes`, bound to 127.0.0.1 unless `--host` says otherwise; `--port 0` picks a free port and prints it.",
    run(['serve', '--help'], maxlines=30))
add("requeue, cancel, retry", "`requeue --stuck` rescues running jobs whose lease expired (their worker died); `requeue ID…` puts jobs back in line now; `cancel ID…`; `retry ID…` gives failed or cancelled jobs one more attempt. Each id is reported; exit 1 if any could not be changed. `--dry-run` rehearses each change in a transaction that is rolled back and says what it would do; the store is left byte for byte as it was.",
    run(['requeue', S, '--stuck', '--dry-run']), run(['requeue', S, '--stuck']), run(['cancel', S, pending, '--dry-run']), run(['requeue', S, running]), run(['cancel', S, pending]),
    run(['retry', S, pending, failed]), run(['cancel', S, pending, '0190a5c4-1b2e-7000-8123-456789abcdef']))
add("bulk actions by filter", "`cancel`, `retry`, `requeue` and `delete` also select by filter — `--state`, `--queue`, `--name`, `--created-before`, `--finished-before` (a time or a duration ago) — or take ids from stdin (`-`). `--dry-run` rehearses the whole change in one transaction that is rolled back and prints the figures the real run then prints: how many would change and how many would be skipped, and why (their state does not allow it, pipeline steps, gone meanwhile; a cascade counts: a pipeline step cancelled by an earlier one is skipped). The changes go in transactions of `--batch-size`.",
    run(['cancel', S, '--state', 'pending', '--queue', 'q1', '--dry-run']), run(['cancel', S, '--state', 'pending', '--queue', 'q1']),
    run(['retry', S, '--state', 'cancelled', '--queue', 'q1', '--json']), run(['delete', S, '--state', 'failed', '--dry-run']))
add("cancel and retry a pipeline", "`cancel` and `retry` take pipeline ids too; `delete PIPELINE_ID` and `pipelines delete ID…` delete a pipeline with its steps' jobs. `retry` re-runs a pipeline's failed and cancelled steps and what they cancelled, keeping what succeeded: a step whose dependencies all succeeded becomes pending, the others wait. `cancel` cancels every unfinished step (running ones too: their workers' outcomes are refused).",
    run(['retry', P, nightly, '--dry-run']), run(['retry', P, nightly]), run(['pipelines', 'show', P, nightly], maxlines=25), run(['cancel', P, nightly, '--json']),
    run(['pipelines', 'delete', P, nightly, '--dry-run']))
add("a damaged record: delete --damaged", "A job record whose bytes no longer match its seal (a CRC32C, docs/FORMAT.md), or that does not decode, is a `verify` finding (`badRecord`, with the job's id), and every read of it is an error saying so; `jobs list` and `export` skip it and name it. `delete` cannot remove it (it reads the record to find the job's index entries); `delete --damaged ID…` does: it removes the record and every index entry naming the id, and recounts the job counters from the other records (it walks every index and record: O(n)). It refuses a record that reads, and a pipeline step's job (delete the pipeline). Then `verify` is clean again. The other way out is a backup.",
    run(['delete', S, '--damaged', pending]))
add("readers", "LMDB's reader table; `--clear-stale` frees slots of processes that died.",
    run(['readers', S, '--clear-stale']))
add("top", "A live view of jobs per state with their change per second, commits per second, the oldest ready job's wait, expired leases, and the busiest queues (as many as fit the window) with their finished jobs per second; rates are over a sliding `--window` (10s). On a terminal it takes the alternate screen (the shell's comes back on exit) and `q` quits; `--interval`, `--iterations`. From a pipe it prints one view per refresh; `--json` one object per refresh:",
    run(['top', S, '--iterations', '2', '--interval', '500ms']))
add("Bad input", "Each gets one line on stderr saying what to do, the documented exit code, and nothing changes on disk.",
    run(['stats', '/tmp/no-such-store']), run(['stats', '/tmp']), run(['jobs', 'show', S, 'not-an-id']),
    run(['jobs', 'show', S, '0190a5c4-1b2e-7000-8123-456789abcdef']),
    run(['prune', S, '--state', 'succeeded', '--older-than', '7 days']),
    run(['backup', S, '/tmp/admin-backup']), run(['jobs', 'list', S, '--state', 'sleeping']),
    run(['pipelines', 'show', P, step_job]), run(['pipelines', 'show', P, '0190a5c4-1b2e-7000-8123-456789abcdef']),
    run(['pipelines', 'show', P, 'nightly-import']), run(['retry', P, pipelines[0]['id']]),
    run(['cancel', S, '--state', 'pending', '--queu', 'q1']), run(['prune', S, '--bogus', '1h']))

# JSON output: one schema per command, derived from the real output above and below.
STATE_KEYS = {'waiting', 'pending', 'running', 'succeeded', 'failed', 'cancelled'}


def kind(value):
    return {bool: 'boolean', int: 'integer', float: 'number', str: 'string', type(None): 'null'}.get(type(value))


def walk(value, path, rows, data_keys, seen):
    """Adds (path, type) rows for value; objects keyed by data (state or queue names) are one row.
    seen counts how often each path occurred (a key seen less often than its object is optional)."""
    seen[path] = seen.get(path, 0) + 1
    if isinstance(value, dict):
        if path in data_keys or (value and set(value) <= STATE_KEYS):
            label = data_keys.get(path, 'state')
            inner = {kind(v) or ('object' if isinstance(v, dict) else 'array') for v in value.values()}
            if path.endswith('second'):
                inner = {'number'}
            rows.setdefault(path, set()).add(f"object: {label} → {' or '.join(sorted(inner)) or 'integer'}")
            for v in value.values():
                if isinstance(v, dict):
                    walk(v, path + '.*', rows, data_keys, seen)
            return
        if path:
            rows.setdefault(path, set()).add('object')
        for key, item in value.items():
            walk(item, f"{path}.{key}" if path else key, rows, data_keys, seen)
    elif isinstance(value, list):
        rows.setdefault(path, set()).add('array')
        for item in value:
            walk(item, path + '[]', rows, data_keys, seen)
    else:
        measured = path.endswith('second') or path.endswith('seconds')  # rates and waits: 0.0 prints as 0
        rows.setdefault(path, set()).add('number' if measured and kind(value) == 'integer' else kind(value))


def schema(title, runs, lines=False, data_keys={}, extra=(), select=lambda document: True, note=''):
    """The schema of a command's JSON, merged over the outputs of `runs` (argument lists), of the
    documents `select` keeps."""
    rows, seen, documents = {}, {}, []
    for args in runs:
        out = subprocess.run([J] + args, capture_output=True, text=True).stdout
        documents += [json.loads(line) for line in out.splitlines() if line.strip()] if lines else [json.loads(out)]
    documents = [document for document in documents if select(document)]
    for document in documents:
        walk(document, '', rows, data_keys, seen)
    for path, types in extra:
        rows.setdefault(path, set()).add(types)
        seen.setdefault(path, 1)

    def parent(path):
        return path[:-2] if path.endswith('[]') else path.rsplit('.', 1)[0] if '.' in path else ''

    def optional(path):
        return not path.endswith('[]') and seen.get(path, 0) < seen.get(parent(path), 0)

    table = "\n".join(f"| `{path}` | {', '.join(sorted(types))}{' (optional)' if optional(path) else ''} |"
                      for path, types in sorted(rows.items()) if path)
    top = 'one object per line' if lines else ('an array' if isinstance(documents[0], list) else 'one object')
    sources = '; '.join(f"`jobstore {shlex.join(args)}`" for args in runs)
    return f"### `jobstore {title}`{' ' + note if note else ''}\n\n{top}; from {sources}\n\n| key | type |\n|---|---|\n{table}\n"


subprocess.run([J, 'queues', 'pause', P, 'mail'], capture_output=True)
subprocess.run([J, 'queues', 'limit', P, 'reports', '--starts', '5', '--per', '1m'], capture_output=True)
problem = (('problems[]', 'object'), ('problems[].kind', 'string'), ('problems[].message', 'string'),
           ('problems[].job', 'string (optional)'), ('problems[].pipeline', 'string (optional)'))
schemas = [
    schema('stats', [['stats', S, '--json']], data_keys={'queues': 'queue name'}),
    schema('jobs list', [['jobs', 'list', S, '--state', 'running', '--limit', '2', '--json'], ['jobs', 'list', P, '--state', 'failed', '--json']]),
    schema('jobs errors', [['jobs', 'errors', P, '--json']]),
    schema('jobs show', [['jobs', 'show', S, running, '--json'], ['jobs', 'show', P, step_job, '--json']]),
    schema('jobs history', [['jobs', 'history', P, '--kind', 'claimed,retried,failed', '--limit', '50', '--json']], lines=True),
    schema('pipelines list', [['pipelines', 'list', P, '--json']]),
    schema('pipelines show', [['pipelines', 'show', P, nightly, '--json']]),
    schema('queues', [['queues', P, '--json']]),
    schema('schedules', [['schedules', P, '--json']]),
    schema('verify', [['verify', S, '--json']], extra=problem),
    schema('export', note='(a job)', runs= [['export', P]], lines=True, select=lambda d: d.get('kind') in (None, 'job')),
    schema('export', note='(a pipeline)', runs= [['export', P]], lines=True, select=lambda d: d.get('kind') == 'pipeline'),
    schema('export', note='(a queue\'s controls)', runs= [['export', P]], lines=True, select=lambda d: d.get('kind') == 'queue'),
    schema('export', note='(a schedule)', runs= [['export', P]], lines=True, select=lambda d: d.get('kind') == 'schedule'),
    schema('import', note='(after each batch; at the end with `done`)', runs= [['import', '/tmp/admin-import-json', '/tmp/admin-pipelines.jsonl', '--create', '--json']], lines=True),
    schema('prune', [['prune', S, '--state', 'succeeded', '--older-than', '30d', '--history-before', '1d', '--dry-run', '--json']]),
    schema('cancel|retry|requeue|delete --state …', runs= [['cancel', S, '--state', 'pending', '--queue', 'q2', '--json']], lines=True),
    schema('cancel|retry|requeue|delete --state … --dry-run', note='(`would_change`, `would_skip` and why)', runs=[['cancel', S, '--state', 'pending', '--queue', 'q3', '--dry-run', '--json']], lines=True),
    schema('cancel|retry|requeue ID…', runs= [['retry', S, pending, failed, '--json']], lines=True),
    schema('backup', [['backup', S, '/tmp/admin-backup-json', '--json']]),
    schema('readers', [['readers', S, '--json']]),
    schema('top', [['top', S, '--iterations', '2', '--interval', '200ms', '--json']], lines=True),
]
subprocess.run([J, 'queues', 'resume', P, 'mail'], capture_output=True)
subprocess.run([J, 'queues', 'unlimit', P, 'reports'], capture_output=True)
add("JSON output", "With `--json` every command prints JSON a program can consume: keys in snake_case; counts, sizes and flags as numbers and booleans; every state's count present, zeros included; each time in microseconds since the epoch (`created_at`) with an ISO 8601 copy beside it (`created_at_iso`, UTC, microseconds; `import` reads the microseconds and ignores the copies); a key whose value is absent (a job without a lease) is left out. Objects keyed by data (state names, queue names) are one row: `state → integer`. The tables below are derived from real output (`scripts/admin-doc.py`).",
    *schemas)

head = '''# The admin tool: `jobstore`

`jobstore` inspects and repairs a store — also while another process writes to it: commands
that only read open the store read-only and keep their read transactions short (`verify`
walks the store in chunks of 10,000 entries, each its own snapshot). Every command prints a table for people, or JSON
with `--json`.

| exit code | meaning |
|---:|---|
| 0 | success |
| 1 | a failure was found (`verify` found problems, an id could not be changed) or a runtime error occurred (not a store, a store of a newer format, …) |
| 2 | usage error: a bad option, id, state, duration or time, a missing path, a non-empty destination |

The examples below are real output (regenerate with `python3 scripts/admin-doc.py`), on a store
made with `jobstore bench --jobs 1000 --durability relaxed --dir /tmp/admin-demo --phases insert-single,claim`
(1,000 jobs loaded in JobBench's state mix, 10 inserted, 20 claimed and completed).
The pipeline examples run on the store `jobstore demo --dir /tmp/admin-pipelines` leaves (two
finished pipelines: `release`, succeeded, and `nightly-import`, whose `transform` step failed).
Commands: `stats`, `jobs list`, `jobs show`, `pipelines list`, `pipelines show`, `queues`, `verify`,
`backup`, `export`, `import`, `prune`, `requeue`, `cancel`, `retry`, `readers`, `top`, and `demo`
and `bench` (see the README). Tables show times relative to now (`--utc` for UTC in the
listings), colour states on a terminal (never into a pipe; `NO_COLOR` turns it off) and cut long
names to the terminal's width. A store this user may not write (another user's, a read-only
copy) is read without LMDB's lock file, with a warning that a concurrent writer is then not
seen; commands that write say whose the store is. [JSON output](#json-output) gives the shape
of every command's `--json`.

'''
open('docs/ADMIN.md', 'w').write(head + "\n".join(sections))
