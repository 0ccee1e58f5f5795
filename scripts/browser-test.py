#!/usr/bin/env python3
"""The dashboard in a real browser.

Serves a demo store with `jobstore serve`, drives headless Chromium through the DevTools
protocol (over --remote-debugging-pipe: no extra package) over every page, checking their key
elements after their scripts ran, follows links as a user would, checks that a commit of another
process reaches an open page by Server-Sent Events without a reload, and takes screenshots.

    python3 scripts/browser-test.py [--screenshots DIR]

Needs Debian's `chromium`; without it, says so and exits 0 (CI installs it).
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBSTORE = os.path.join(ROOT, '.build', 'debug', 'jobstore')


class Browser:
    """Chromium driven through the DevTools protocol on file descriptors 3 and 4."""

    def __init__(self, binary, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        # Inheritable, so that a pipe end that already is fd 3 or 4 (dup2 onto itself does
        # nothing) is not closed at exec.
        os.set_inheritable(to_browser_r, True)
        os.set_inheritable(from_browser_w, True)

        def wire():
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [binary, '--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--remote-debugging-pipe',
             f'--user-data-dir={profile}', '--window-size=1280,900', 'about:blank'],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b''
        self.next_id = 0
        target = self.call('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.call('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        self.call('Page.enable', session=True)
        self.call('Emulation.setDeviceMetricsOverride', {'width': 1280, 'height': 900, 'deviceScaleFactor': 1, 'mobile': False}, session=True)

    def call(self, method, params=None, session=False, timeout=30):
        self.next_id += 1
        message = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session:
            message['sessionId'] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b'\0')
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b'\0' in self.buffer:
                raw, self.buffer = self.buffer.split(b'\0', 1)
                reply = json.loads(raw)
                if reply.get('id') == self.next_id:
                    if 'error' in reply:
                        raise RuntimeError(f'{method}: {reply["error"]}')
                    return reply.get('result', {})
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError('the browser closed its pipe')
            self.buffer += chunk
        raise RuntimeError(f'{method}: no answer within {timeout} s')

    def evaluate(self, expression):
        result = self.call('Runtime.evaluate', {'expression': expression, 'returnByValue': True}, session=True)
        if 'exceptionDetails' in result:
            raise RuntimeError(f'{expression}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def open(self, url, lands=None):
        """Navigates to `url` and waits until the page at `lands` (`url` unless it redirects) loaded."""
        self.call('Page.navigate', {'url': url}, session=True)
        for _ in range(200):
            if self.evaluate('document.readyState') == 'complete' and self.evaluate('location.href') == (lands or url):
                return
            time.sleep(0.05)
        raise RuntimeError(f'{url} did not load')

    def screenshot(self, path):
        data = self.call('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': False}, session=True)['data']
        with open(path, 'wb') as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.call('Browser.close', timeout=5)
        except Exception:
            pass
        self.process.kill()
        self.process.wait()


def fail(message):
    print(f'browser test FAILED: {message}', file=sys.stderr)
    sys.exit(1)


def main():
    shots = sys.argv[sys.argv.index('--screenshots') + 1] if '--screenshots' in sys.argv else None
    binary = shutil.which('chromium') or shutil.which('chromium-browser')
    if not binary:
        print('browser test skipped: chromium is not installed (apt-get install -y chromium)')
        return
    if not os.path.exists(JOBSTORE):
        subprocess.run(['swift', 'build', '--product', 'jobstore'], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix='jobstore-browser-')
    shots = shots or os.path.join(work, 'screenshots')
    os.makedirs(shots, exist_ok=True)
    store = os.path.join(work, 'store')
    subprocess.run([JOBSTORE, 'demo', '--dir', store, '--jobs', '2000'], check=True, stdout=subprocess.DEVNULL)
    servers, logs = [], []

    def serve(name, *flags, env=None):
        """Starts `jobstore serve` on the store (a free port); returns its base URL."""
        log = open(os.path.join(work, f'{name}.log'), 'w+')
        logs.append(log)
        servers.append(subprocess.Popen([JOBSTORE, 'serve', store, '--port', '0', *flags], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})}))
        for _ in range(100):
            log.seek(0)
            for line in log.read().splitlines():
                if line.startswith('serving ') and ' at ' in line:
                    return line.split(' at ')[1].split(' ')[0].rstrip('/')
            time.sleep(0.1)
        fail(f'jobstore serve ({name}) did not start')

    browser = None
    try:
        base = serve('serve')
        browser = Browser(binary, os.path.join(work, 'profile'))
        print(f'serving at {base}, {subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()}')

        def expect(path, *texts):
            browser.open(base + path)
            html = browser.evaluate('document.documentElement.outerHTML')
            for text in texts:
                if text not in html:
                    fail(f'{path} lacks {text!r}')
            print(f'ok  {path}')
            return html

        expect('/', 'Overview', 'Read-only: this dashboard changes nothing', 'jobs finished per 10 seconds', '<polyline', 'Queues', 'reports')
        expect('/jobs?state=succeeded', '<table>', 'next page →')
        expect('/jobs?state=failed', 'transform')
        expect('/pipelines', 'release', 'nightly-import')
        expect('/metrics', 'jobstore_jobs{state="succeeded"}')
        expect('/jobs?state=exploded', 'is not a state')

        # Follow links as a user would: the failed pipeline from the list, then a step of it.
        expect('/pipelines?state=failed', 'nightly-import')
        pipeline = browser.evaluate('document.querySelector(\'a[href^="/pipelines/0"]\').getAttribute("href")')
        browser.evaluate('document.querySelector(\'a[href^="/pipelines/0"]\').click()')
        time.sleep(0.5)
        if not browser.evaluate('location.pathname').startswith('/pipelines/0'):
            fail('clicking a pipeline did not open it')
        html = expect(pipeline, 'aria-label="pipeline DAG"', 'transform', 'cancelled', 'queued')
        browser.evaluate('[...document.querySelectorAll("svg a")].find(a => a.textContent.includes("transform")).dispatchEvent(new MouseEvent("click", {bubbles: true}))')
        time.sleep(0.5)
        job = browser.evaluate('location.pathname')
        if not job.startswith('/jobs/'):
            fail(f'clicking the transform box in the DAG did not open its job (at {job})')
        expect(job, 'Timeline', 'schema mismatch in column 7', 'claimed', 'retried')

        # Live: the open overview follows another process's commit, without a reload.
        browser.open(base + '/')
        browser.evaluate('window.loadedOnce = true')
        before = int(browser.evaluate('document.getElementById("transaction").textContent'))
        line = json.dumps({'id': '0190a5c4-1b2e-7000-8123-456789abcdef', 'name': 'live', 'queue': 'browser', 'state': 'pending',
                           'priority': 0, 'created_at': 1, 'updated_at': 1, 'run_at': 1, 'attempts': 0, 'max_attempts': 1,
                           'errors': [], 'payload': ''})
        subprocess.run([JOBSTORE, 'import', store, '-'], input=line, text=True, check=True, stdout=subprocess.DEVNULL)
        for _ in range(100):
            after = int(browser.evaluate('document.getElementById("transaction").textContent'))
            queues = browser.evaluate('document.getElementById("queues").textContent')
            if after > before and 'browser' in queues:
                break
            time.sleep(0.1)
        else:
            fail(f'the open page did not follow the commit (transaction {before} → {after})')
        if not browser.evaluate('window.loadedOnce === true'):
            fail('the page reloaded instead of updating in place')
        print(f'ok  live update: transaction {before} → {after}, the new queue shown without a reload')

        expect('/schedules', 'Periodic jobs', 'schedule', 'next tick')

        # Queue controls: a dashboard started with --allow-writes, logged in with its token, pauses
        # a queue from the overview's row (the confirmation accepted), and the row says so.
        token = 'browser-test-token-0123456789'
        writable = serve('serve-writes', '--allow-writes', env={'JOBSTORE_DASHBOARD_TOKEN': token})
        browser.open(writable + '/login?token=' + token, lands=writable + '/')
        browser.evaluate('window.confirm = () => true')
        browser.evaluate('document.querySelector(\'form[action="/queues/pause"] input[name=queue][value="reports"]\').form.requestSubmit()')
        for _ in range(50):
            time.sleep(0.1)
            row = browser.evaluate('[...document.querySelectorAll("#queues tr")].find(r => r.cells[0].textContent === "reports")?.textContent || ""')
            if 'since' in row and 'Resume' in row:
                break
        else:
            fail(f'pausing queue reports from its row did not show it paused: {row!r}')
        print('ok  queue controls: paused a queue from the overview (with the token)')
        browser.screenshot(os.path.join(shots, 'controls.png'))

        # Run now: a periodic job's job enqueued from the schedules page (the confirmation
        # accepted), the page linking the new job, which the store has.
        def pending_jobs():
            stats = subprocess.run([JOBSTORE, 'stats', store, '--json'], capture_output=True, text=True, check=True)
            return json.loads(stats.stdout)['states']['pending']

        before = pending_jobs()
        browser.open(writable + '/schedules')
        browser.evaluate('window.confirm = () => true')  # a new page: the confirmation accepted again
        if not browser.evaluate('!!document.querySelector(\'form[action="/schedules/run-now"]\')'):
            fail('the schedules page of a dashboard with actions has no "Run now"')
        browser.evaluate('document.querySelector(\'form[action="/schedules/run-now"]\').requestSubmit()')
        for _ in range(50):
            time.sleep(0.1)
            notice = browser.evaluate('document.body.textContent')
            if 'Enqueued job' in notice:
                break
        else:
            fail(f'"Run now" did not say it enqueued a job: {notice[:300]!r}')
        if pending_jobs() != before + 1:
            fail(f'"Run now" did not enqueue one job: {before} pending before, {pending_jobs()} after')
        browser.screenshot(os.path.join(shots, 'schedules-run-now.png'))
        print('ok  run now: a periodic job\'s job enqueued from the schedules page')

        # Search and the common errors: the failed step found by its error's text, and grouped.
        expect('/jobs?state=failed&error=schema', 'transform', 'Looked at')
        browser.open(writable + '/jobs?state=failed&error=schema')
        time.sleep(0.2)
        browser.screenshot(os.path.join(shots, 'search.png'))
        expect('/errors', 'schema mismatch in column 7', 'failed since')
        browser.screenshot(os.path.join(shots, 'errors.png'))

        # A bulk action: tick the failed jobs' rows, preview the retry (its count, nothing changed),
        # confirm it, and the jobs are retried.
        def failed_jobs():
            listed = subprocess.run([JOBSTORE, 'jobs', 'list', store, '--state', 'failed', '--json'], capture_output=True, text=True, check=True)
            return len(json.loads(listed.stdout)['jobs'])

        browser.open(writable + '/jobs?state=failed')
        ticked = browser.evaluate('(() => { const boxes = [...document.querySelectorAll("input[name=ids]")]; boxes.forEach(b => b.checked = true); return boxes.length })()')
        if not ticked:
            fail('the job list of a dashboard with actions has no boxes to tick')
        browser.evaluate('document.querySelector("#bulk select[name=action]").value = "retry"')
        browser.evaluate('document.getElementById("bulk").requestSubmit()')
        for _ in range(50):
            time.sleep(0.1)
            preview = browser.evaluate('document.getElementById("preview")?.textContent || ""')
            if preview:
                break
        if f'{ticked} would be retried' not in preview:
            fail(f'the bulk preview does not say how many it retries: {preview!r}')
        browser.screenshot(os.path.join(shots, 'bulk-preview.png'))
        if failed_jobs() != ticked:
            fail(f'the preview changed the store: {failed_jobs()} failed jobs, {ticked} before')
        browser.evaluate('document.getElementById("confirm").click()')
        for _ in range(50):
            time.sleep(0.1)
            done = browser.evaluate('document.getElementById("done")?.textContent || ""')
            if done:
                break
        if 'retried' not in done or failed_jobs() != 0:
            fail(f'the confirmed bulk retry did not retry the failed jobs: {done!r}, {failed_jobs()} still failed')
        print(f'ok  bulk action: {preview.split(":")[1].strip().split(".")[0]}; then {done.split(":")[1].strip().split(".")[0]}')

        # Who runs what: a second demo's scheduler at work, seen on the workers page of a
        # dashboard serving its store while it runs (from its heartbeat, another process's).
        busy_store = os.path.join(work, 'busy')
        # 100,000 jobs: long enough (a debug build) to see two heartbeats; a loaded machine took
        # over 120 s for 300,000 (2026-12-08), so its end is awaited for up to 10 minutes.
        demo = subprocess.Popen([JOBSTORE, 'demo', '--dir', busy_store, '--jobs', '100000'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append(demo)
        for _ in range(200):
            if os.path.exists(os.path.join(busy_store, 'data.mdb')):
                break
            time.sleep(0.05)
        log = open(os.path.join(work, 'serve-busy.log'), 'w+')
        logs.append(log)
        servers.append(subprocess.Popen([JOBSTORE, 'serve', busy_store, '--port', '0'], stdout=log, stderr=subprocess.STDOUT))
        busy = None
        for _ in range(100):
            log.seek(0)
            line = next((l for l in log.read().splitlines() if l.startswith('serving ') and ' at ' in l), None)
            if line:
                busy = line.split(' at ')[1].split(' ')[0].rstrip('/')
                break
            time.sleep(0.1)
        if not busy:
            fail('jobstore serve (busy) did not start')
        for _ in range(100):
            browser.open(busy + '/workers')
            rows = browser.evaluate('document.querySelectorAll("#workers tbody tr td code").length')
            if rows:
                break
            time.sleep(0.1)
        else:
            fail('the workers page did not show the running demo scheduler')
        host = browser.evaluate('document.querySelector("#workers tbody tr").cells[1].textContent')
        for _ in range(60):  # its first heartbeat is from its start, before any job ran: wait for the next
            if browser.evaluate('document.querySelectorAll("#running tbody tr").length') or demo.poll() is not None:
                break
            time.sleep(0.25)
            browser.open(busy + '/workers')
        print(f'ok  /workers: the demo\'s scheduler on {host}, from its heartbeat')
        browser.screenshot(os.path.join(shots, 'workers.png'))
        demo.wait(timeout=600)
        for _ in range(50):
            browser.open(busy + '/workers')
            if 'no scheduler is running' in browser.evaluate('document.body.textContent'):
                break
            time.sleep(0.1)
        else:
            fail('the workers page still lists the demo scheduler after it stopped')
        print('ok  /workers: empty once the demo\'s scheduler stopped')

        for name, path in [('overview', '/'), ('jobs', '/jobs?state=succeeded'), ('job', job), ('pipeline', pipeline), ('schedules', '/schedules')]:
            browser.open(base + path)
            time.sleep(0.3)
            browser.screenshot(os.path.join(shots, f'{name}.png'))
        print(f'screenshots in {shots}: {" ".join(sorted(os.listdir(shots)))}')
        print('browser test passed')
    finally:
        if browser:
            browser.close()
        for server in servers:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
