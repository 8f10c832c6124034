"""Case 10 of scripts/bench.py, `scale`: one mount over a big tenant that keeps taking
calls. Run only when named (`scripts/bench.sh scale`), as the full size takes long.

The emulator serves `--interactions N --days D --rate-limit 160` (end = now, so new
calls keep arriving); the mount lists `--from 7d` with `--max-rpm 150 --refresh 60`
and its own cache directory. Reported, each next to its target:

- live: seconds from starting `vccfs mount` until `stat <mnt>/interactions` answers;
- one day: seconds to `ls <mnt>/by-date/<yesterday>`, and the count;
- the window: seconds to `ls <mnt>/interactions`, and the count;
- memory: the daemon's VmRSS divided by the interactions it lists;
- idle searches: the emulator's `search_requests` per minute over an idle spell;
- new calls: a call started after the mount went live (learned from
  `/_emulator/tenant`) appears in its `by-date` day within the refresh.

Knobs (flag or environment): --scale-interactions / VCCFS_SCALE_INTERACTIONS
(1000000), --scale-days / VCCFS_SCALE_DAYS (30), --scale-idle / VCCFS_SCALE_IDLE_SECS
(180), --scale-timeout / VCCFS_SCALE_TIMEOUT_SECS (1800: the longest wait for any one
step). Every process started here is stopped, and the mount unmounted, on any failure.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

KNOBS = {
    # flag: (environment variable, default)
    "--scale-interactions": ("VCCFS_SCALE_INTERACTIONS", 1_000_000),
    "--scale-days": ("VCCFS_SCALE_DAYS", 30),
    "--scale-idle": ("VCCFS_SCALE_IDLE_SECS", 180),
    "--scale-timeout": ("VCCFS_SCALE_TIMEOUT_SECS", 1800),
}
REFRESH = 60


class Failed(Exception):
    """A step of the case did not complete."""


def take_knobs(argv, knobs=None, prefix="--scale-"):
    """Remove the knobs (`KNOBS` by default; `bench_window` passes its own) from `argv`
    (`--flag N` or `--flag=N`); returns their values, keyed by the flag less `prefix`,
    from the flag, else the environment, else the default."""
    knobs = KNOBS if knobs is None else knobs
    values = {f: int(os.environ.get(env, default)) for f, (env, default) in knobs.items()}
    rest, i = [], 0
    while i < len(argv):
        a = argv[i]
        name, eq, val = a.partition("=")
        if name in knobs:
            if not eq:
                if i + 1 >= len(argv):
                    raise SystemExit(f"{name} needs a value")
                i += 1
                val = argv[i]
            try:
                values[name] = int(val)
            except ValueError:
                raise SystemExit(f"{name}: not a number: {val}")
        else:
            rest.append(a)
        i += 1
    argv[:] = rest
    return {f.removeprefix(prefix): v for f, v in values.items()}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def get_json(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def run(cmd, timeout, **kw):
    """Run `cmd` (a list, or a string with shell=True; output captured as text); Failed
    if it fails or takes too long."""
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Failed(f"{shown}: no answer within {timeout} s")
    if p.returncode != 0:
        raise Failed(f"{shown}: exit {p.returncode}: {p.stderr.strip()[:300]}")
    return p.stdout


def timed_ls(path, timeout):
    t = time.perf_counter()
    out = run(["ls", path], timeout)
    return time.perf_counter() - t, len(out.split())


class ScaleMount:
    """`vccfs mount` with the case's flags; `stop` always unmounts and ends it."""

    def __init__(self, bin_path, emu, timeout):
        self.dir = tempfile.mkdtemp(prefix="vccfs-bench-scale-")
        self.path = os.path.join(self.dir, "mnt")
        os.mkdir(self.path)
        env = dict(os.environ, VCC_CLIENT_ID=emu.client_id, VCC_CLIENT_SECRET=emu.client_secret,
                   XDG_CACHE_HOME=os.path.join(self.dir, "xdg"))
        self.log = open(os.path.join(self.dir, "mount.log"), "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [bin_path, "mount", self.path, "--api-url", emu.api_url, "--auth-url", emu.auth_url,
             "--from", "7d", "--max-rpm", "150", "--refresh", str(REFRESH),
             "--cache-dir", os.path.join(self.dir, "cache")],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.live_secs = None

    def wait_live(self, timeout):
        """Seconds until `stat <mnt>/interactions` answers (the empty directory under
        the mount has no `interactions`, so this is the mount serving)."""
        deadline = self.started + timeout
        probe = os.path.join(self.path, "interactions")
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"vccfs mount exited ({self.proc.returncode}); log: {self.log.name}")
            try:
                # In a child: a mount that is up but not answering must not hang us.
                subprocess.run(["stat", probe], capture_output=True, check=True, timeout=30)
                self.live_secs = time.perf_counter() - self.started
                return
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                time.sleep(0.1)
        raise Failed(f"the mount was not live within {timeout} s")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failed("no VmRSS for the daemon")

    def status(self, bin_path):
        return json.loads(run([bin_path, "status", "--json", self.path], 30))

    def stop(self):
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-u", self.path], check=False, capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-uz", self.path], check=False, capture_output=True, timeout=60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def new_call(emu, since, timeout):
    """A call that started at or after `since` (epoch seconds), waiting for one."""
    url = emu.stats_url.replace("/_emulator/stats", "/_emulator/tenant")
    deadline = time.time() + timeout
    while time.time() < deadline:
        calls = get_json(url + "?" + urllib.parse.urlencode({"start": iso(since)}))
        if calls:
            return min(calls, key=lambda c: c["start"])
        time.sleep(5)
    raise Failed(f"the emulator took no new call within {timeout} s")


def seen_in_listing(m, call, timeout):
    """Seconds until `call` is in `ls <mnt>/by-date/<its day>`, or None."""
    day = os.path.join(m.path, "by-date", call["start"][:10])
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if call["guid"] in run(["ls", day], 600).split():
                return time.perf_counter() - t0
        except Failed:
            pass  # the day may not be listed yet
        time.sleep(5)
    return None


def scale_case(bin_path, emulator_cls, row, log, knobs):
    n, days, idle, timeout = knobs["interactions"], knobs["days"], knobs["idle"], knobs["timeout"]
    label = f"10 scale: {n} calls / {days} d, --from 7d"
    log(f"scale: emulator with {n} interactions over {days} days...")
    emu = emulator_cls(["--interactions", str(n), "--days", str(days), "--rate-limit", "160"])
    m = None
    try:
        m = ScaleMount(bin_path, emu, timeout)
        m.wait_live(timeout)
        live_at = time.time()
        row(f"{label}: live", f"{m.live_secs:.1f} s", "", "", "<= 5 s")
        day = iso(time.time() - 86400)[:10]
        t_day, n_day = timed_ls(os.path.join(m.path, "by-date", day), timeout)
        row(f"{label}: ls by-date/{day}", f"{t_day:.2f} s, {n_day} entries", "", "", "")
        t_all, n_all = timed_ls(os.path.join(m.path, "interactions"), timeout)
        row(f"{label}: ls interactions", f"{t_all:.2f} s, {n_all} entries", "", "", "")
        s = m.status(bin_path)
        listed = s.get("interactions_listed") or n_all
        rss = m.rss_kib()
        row(f"{label}: RSS per interaction", f"{rss / max(listed, 1):.2f} KiB", f"VmRSS {rss / 1024:.0f} MiB",
            f"{listed} listed, {s.get('nodes', '?')} nodes", "<= 1 KiB")
        before = emu.stats()["search_requests"]
        log(f"scale: idle for {idle} s...")
        time.sleep(idle)
        searches = (emu.stats()["search_requests"] - before) * 60 / max(idle, 1)
        row(f"{label}: idle searches", f"{searches:.1f} /min", f"over {idle} s", "", "<= 15 /min")
        call = new_call(emu, live_at, 300)
        waited = seen_in_listing(m, call, 2 * REFRESH + 60)
        found = subprocess.run(["stat", os.path.join(m.path, "interactions", call["guid"])],
                               capture_output=True, timeout=60).returncode == 0
        seen = f"listed after {waited:.0f} s" if waited is not None else f"not listed in {2 * REFRESH + 60} s"
        row(f"{label}: new call", seen, f"stat by guid: {'found' if found else 'missing'}",
            f"started {call['start']}", "seen within the refresh")
    except (Failed, OSError, ValueError, KeyError) as e:
        row(f"{label}: failed", f"{type(e).__name__}: {e}", "", "", "")
    finally:
        if m is not None:
            m.stop()
        emu.stop()
