"""Case `window` of scripts/bench.py (issue 24): a long window of a live tenant held
within the catalog's memory budget. Run only when named (`scripts/bench.sh window`).

The emulator serves `--interactions N --days D`, unthrottled, ending now (a live
tenant); the mount lists `--from <D>d --refresh 60` with the default
`--catalog-memory 256M` and its own cache directory (temporary, as are the ports).
Reported, each next to its target:

- live: seconds from starting `vccfs mount` until `stat <mnt>/interactions` answers;
- every day listed: seconds until `vccfs status --json` says no day of the window is
  left unlisted (`days_unlisted == 0`), and the interactions listed;
- RSS: the daemon's VmRSS sampled every 0.5 s for the whole run (the maximum), and
  its VmHWM at the end (the kernel's own peak);
- `ls -f interactions | wc -l`: seconds, the count, the RSS after;
- `ls by-date/<the day 45 days back>` (or the middle day of a shorter window):
  seconds, and whether the names are exactly the emulator's calls of that day
  (`/_emulator/tenant?start=..&end=..`, its ground truth);
- idle searches: the emulator's `search_requests` over an idle spell;
- the policy's simulated idle cost at 30/365/730 days (`vccfs policy-cost`, the
  simulation `catalog::policy::simulated_idle_cost` that the unit test
  `idle_cost_has_a_ceiling_whatever_the_window` checks).

Knobs (flag or environment): --window-interactions / VCCFS_WINDOW_INTERACTIONS
(2000000), --window-days / VCCFS_WINDOW_DAYS (60), --window-idle /
VCCFS_WINDOW_IDLE_SECS (150), --window-timeout / VCCFS_WINDOW_TIMEOUT_SECS (1800).
Every process started here is stopped, and the mount unmounted, on any failure.
"""

import calendar
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import bench_scale
from bench_scale import Failed, iso, run

KNOBS = {
    "--window-interactions": ("VCCFS_WINDOW_INTERACTIONS", 2_000_000),
    "--window-days": ("VCCFS_WINDOW_DAYS", 60),
    "--window-idle": ("VCCFS_WINDOW_IDLE_SECS", 150),
    "--window-timeout": ("VCCFS_WINDOW_TIMEOUT_SECS", 1800),
}
REFRESH = 60
MiB = 1024


def take_knobs(argv):
    """Remove the window knobs from `argv` (as `bench_scale.take_knobs`)."""
    return bench_scale.take_knobs(argv, KNOBS, "--window-")


def proc_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    """VmRSS of `pid` every 0.5 s; `max_kib` the highest seen, `at` what was running."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kib, self.step, self.at = pid, 0, "start", "start"
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            kib = proc_kib(self.pid, "VmRSS")
            if kib is not None and kib > self.max_kib:
                self.max_kib, self.at = kib, self.step
            self.stopping.wait(0.5)

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


class WindowMount:
    """`vccfs mount --from <days>d --refresh 60` (default --catalog-memory); `stop`
    always unmounts and ends it."""

    def __init__(self, bin_path, emu, days):
        self.bin = bin_path
        self.dir = tempfile.mkdtemp(prefix="vccfs-bench-window-")
        self.path = os.path.join(self.dir, "mnt")
        os.mkdir(self.path)
        env = dict(os.environ, VCC_CLIENT_ID=emu.client_id, VCC_CLIENT_SECRET=emu.client_secret,
                   XDG_CACHE_HOME=os.path.join(self.dir, "xdg"))
        self.log = open(os.path.join(self.dir, "mount.log"), "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [bin_path, "mount", self.path, "--api-url", emu.api_url, "--auth-url", emu.auth_url,
             "--from", f"{days}d", "--refresh", str(REFRESH), "--cache-dir", os.path.join(self.dir, "cache")],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def wait_live(self, timeout):
        """Seconds until `stat <mnt>/interactions` answers."""
        probe = os.path.join(self.path, "interactions")
        while time.perf_counter() < self.started + timeout:
            if self.proc.poll() is not None:
                raise Failed(f"vccfs mount exited ({self.proc.returncode}); log: {self.log.name}")
            try:
                subprocess.run(["stat", probe], capture_output=True, check=True, timeout=30)
                return time.perf_counter() - self.started
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                time.sleep(0.05)
        raise Failed(f"the mount was not live within {timeout} s")

    def status(self):
        return json.loads(run([self.bin, "status", "--json", self.path], 30))

    def wait_all_listed(self, timeout):
        """Seconds (from the start of the mount) until no day of the window is unlisted;
        the last status."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            s = self.status()
            if s.get("days_unlisted", 1) == 0 and s.get("days_listed", 0) >= s.get("days_in_window", 1):
                return time.perf_counter() - self.started, s
            time.sleep(0.5)
        raise Failed(f"days still unlisted after {timeout} s: {self.status().get('days_unlisted')}")

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


def emulator_day(emu, day):
    """The emulator's calls starting on `day` (YYYY-MM-DD): its ground truth."""
    url = emu.stats_url.replace("/_emulator/stats", "/_emulator/tenant")
    q = urllib.parse.urlencode({"start": f"{day}T00:00:00Z",
                                "end": iso(calendar.timegm(time.strptime(day, "%Y-%m-%d")) + 86400)})
    with urllib.request.urlopen(url + "?" + q, timeout=600) as r:
        return {c["guid"] for c in json.load(r)}


def policy_cost(bin_path):
    """`vccfs policy-cost`: `{days: (mean, worst)}`."""
    out = {}
    for line in run([bin_path, "policy-cost"], 120).splitlines():
        # "30 days: mean 3.82 searches a minute, worst minute 12"
        words = line.replace(",", "").split()
        out[int(words[0])] = (float(words[3]), int(words[-1]))
    return out


def window_case(bin_path, emulator_cls, row, log, knobs):
    n, days, idle, timeout = knobs["interactions"], knobs["days"], knobs["idle"], knobs["timeout"]
    label = f"window {n} calls / {days} d"
    log(f"window: emulator with {n} interactions over {days} days (unthrottled, live)...")
    t = time.perf_counter()
    emu = emulator_cls(["--interactions", str(n), "--days", str(days)])
    log(f"window: emulator up in {time.perf_counter() - t:.1f} s; mounting --from {days}d --refresh {REFRESH}")
    m, sampler = None, None
    try:
        m = WindowMount(bin_path, emu, days)
        sampler = Sampler(m.proc.pid)
        sampler.start()
        sampler.step = "mount"
        live = m.wait_live(timeout)
        row(f"{label}: live", f"{live:.2f} s", "", "", "<= 2 s")
        sampler.step = "listing"
        listed_at, s = m.wait_all_listed(timeout)
        listed = s.get("interactions_listed", 0)
        row(f"{label}: every day listed", f"{listed_at:.1f} s",
            f"{s.get('days_listed')}/{s.get('days_in_window')} days, {listed} calls", "",
            "every day listed",
            f"catalog {s.get('catalog_memory_bytes', 0) / 2**20:.0f} MiB of "
            f"{s.get('catalog_memory_budget_bytes', 0) / 2**20:.0f} MiB, "
            f"{s.get('catalog_days_in_memory')} days in memory, {s.get('catalog_days_on_disk_only')} on disk only")
        rss_listed = proc_kib(m.proc.pid, "VmRSS") or 0
        row(f"{label}: RSS once listed", f"{rss_listed / MiB:.0f} MiB",
            f"{rss_listed / max(listed, 1):.2f} KiB/call", "", "<= 512 MiB")
        sampler.step = "ls -f interactions"
        t = time.perf_counter()
        count = int(run(f"ls -f {m.path}/interactions | wc -l", timeout, shell=True).strip()) - 2
        t_all = time.perf_counter() - t
        rss_ls = proc_kib(m.proc.pid, "VmRSS") or 0
        row(f"{label}: ls -f interactions | wc -l", f"{t_all:.1f} s, {count} entries",
            f"RSS after {rss_ls / MiB:.0f} MiB", f"listed {listed}", "all listed, RSS <= 512 MiB")
        back = 45 if days > 45 else max(days // 2, 1)
        day = iso(time.time() - back * 86400)[:10]
        sampler.step = f"ls by-date/{day}"
        t = time.perf_counter()
        names = set(run(["ls", os.path.join(m.path, "by-date", day)], timeout).split())
        t_day = time.perf_counter() - t
        truth = emulator_day(emu, day)
        exact = "exact" if names == truth else f"NOT exact: {len(names - truth)} extra, {len(truth - names)} missing"
        row(f"{label}: ls by-date/{day} ({back} d back)", f"{t_day:.2f} s, {len(names)} entries",
            f"emulator {len(truth)}: {exact}", "", "<= 3 s, exact")
        sampler.step = "idle"
        before = emu.stats()["search_requests"]
        log(f"window: idle for {idle} s...")
        time.sleep(idle)
        searches = emu.stats()["search_requests"] - before
        row(f"{label}: idle searches", f"{searches} in {idle} s",
            f"{searches * 60 / max(idle, 1):.1f} /min", "", "policy: mean <= 6 /min, worst minute <= 12")
        sampler.stop()
        hwm = proc_kib(m.proc.pid, "VmHWM") or 0
        row(f"{label}: daemon RSS max (0.5 s samples)", f"{sampler.max_kib / MiB:.0f} MiB",
            f"VmHWM {hwm / MiB:.0f} MiB", f"max during {sampler.at}", "<= 512 MiB")
        s = m.status()
        row(f"{label}: catalog memory", f"{s.get('catalog_memory_bytes', 0) / 2**20:.0f} MiB",
            f"budget {s.get('catalog_memory_budget_bytes', 0) / 2**20:.0f} MiB",
            f"evictions {s.get('catalog_day_evictions')}, reloads {s.get('catalog_day_reloads')}, "
            f"relists {s.get('catalog_day_relists')}", "<= budget")
    except (Failed, OSError, ValueError, KeyError) as e:
        row(f"{label}: failed", f"{type(e).__name__}: {e}", "", "", "")
    finally:
        if sampler is not None:
            sampler.stop()
        if m is not None:
            m.stop()
        emu.stop()
    try:
        for w, (mean, worst) in policy_cost(bin_path).items():
            row(f"policy simulated idle cost, {w} d window", f"{mean:.2f} searches/min", f"worst minute {worst}",
                "1M calls/month, --refresh 60", "mean <= 6, worst <= 12")
    except (Failed, ValueError, IndexError) as e:
        row("policy simulated idle cost: failed", f"{type(e).__name__}: {e}", "", "", "")
