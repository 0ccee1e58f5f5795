#!/usr/bin/env python3
"""Writes the seed corpus Fuzz/corpus/<target>/ from a real store: the demo's (`jobstore demo`),
dumped with lmdb-utils' mdb_dump. Each seed is one stored value (or key, for the keys target):
what the decoders read every day, for libFuzzer to mutate.

    swift build --product jobstore && python3 Fuzz/make-corpus.py
"""
import hashlib, os, shutil, subprocess, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = tempfile.mkdtemp()
store = os.path.join(work, 'store')
subprocess.run([os.path.join(root, '.build/debug/jobstore'), 'demo', '--dir', store, '--jobs', '300'], check=True, stdout=subprocess.DEVNULL)


def dump(database):
    out = subprocess.run(['mdb_dump', '-s', database, store], capture_output=True, text=True, check=True).stdout
    lines = out.split('\n')
    data = lines[lines.index('HEADER=END') + 1:lines.index('DATA=END')]
    return [(bytes.fromhex(data[i].strip()), bytes.fromhex(data[i + 1].strip())) for i in range(0, len(data) - 1, 2)]


seeds = {
    'job-record': [v for _, v in dump('jobs')],
    'pipeline-record': [v for _, v in dump('pipelines')] + [v for _, v in dump('pipeline_steps')],
    'events': [k + v for k, v in dump('history')],
    'keys': [k for db in ['idx.state_created', 'idx.ready', 'idx.ready_any', 'idx.finished', 'pipeline_steps', 'idx.pipeline_state_created'] for k, _ in dump(db)],
    'meta-records': [v for k, v in dump('meta') if k.startswith((b'counter/', b'schedule/', b'queue/'))],
}
# A record's timeline block alone, for the events target (version 3: before the 4-byte seal).
for record in seeds['job-record'][:40]:
    if record[0] in (2, 3):
        end = len(record) - (4 if record[0] == 3 else 0)
        length = int.from_bytes(record[end - 2:end], 'little')
        seeds['events'].append(record[end - 2 - length:end - 2])
# Lines of an export (jobs in every state, pipelines), for the import parser.
exported = subprocess.run([os.path.join(root, '.build/debug/jobstore'), 'export', store], capture_output=True, check=True).stdout
seeds['import-line'] = exported.splitlines()
fixtures = os.path.join(root, 'Tests/JobStoreTests/Fixtures')
pinned = {
    'job-record': ['record-v1-full.bin', 'record-v1-minimal.bin', 'record-v2-timeline.bin', 'record-v3-sealed.bin', 'record-v4-headers.bin'],
    'meta-records': ['progress-v1.bin', 'worker-v1.bin'],
    'pipeline-record': ['pipeline-v2.bin', 'step-v2.bin'],
    'events': ['history-v1.bin', 'history-v2.bin'],
}

for target, values in seeds.items():
    directory = os.path.join(root, 'Fuzz/corpus', target)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    unique = {hashlib.sha1(v).hexdigest()[:16]: v for v in values}
    # At most 40 seeds a target, spread over what the store holds.
    for name in sorted(unique)[:40]:
        open(os.path.join(directory, name), 'wb').write(unique[name])
    for name in pinned.get(target, []):  # the hand-written fixtures, always
        shutil.copy(os.path.join(fixtures, name), os.path.join(directory, 'fixture-' + name))
    print(f'{target}: {len(os.listdir(directory))} seeds')
shutil.rmtree(work)
