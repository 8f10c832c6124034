#!/usr/bin/env python3
"""vccfs benchmarks; run through scripts/bench.sh [CASE...]. Every vccfs figure has a
baseline measured in the same run (curl against the same emulator, or local files).
Case `scale` (scripts/bench_scale.py: a big tenant, listing speed, memory, idle
searches) runs only when named; its size is set by --scale-interactions N and friends.
So does case `window` (scripts/bench_window.py: a long live window within the catalog's
memory budget), sized by --window-interactions N and --window-days D."""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import bench_scale
import bench_window

BIN = os.path.abspath(os.environ.get("VCCFS_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release/vccfs")))
# An older build to compare with in the media case (e.g. a copy of main's binary).
BEFORE_BIN = os.environ.get("VCCFS_BEFORE_BIN")
OUT = os.path.abspath("target/bench/results.json")
THROTTLE = ["--latency-ms", "30", "--bandwidth", "25000000"]
GREP_WORD = "refund"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Emulator:
    def __init__(self, args):
        self.proc = subprocess.Popen([BIN, "emulator", "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, text=True)
        kv = {}
        while len(kv) < 5:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("emulator exited early")
            if "=" in line:
                k, v = line.strip().split("=", 1)
                kv[k] = v
        self.__dict__.update(kv)
        self._token = None

    def stats(self):
        with urllib.request.urlopen(self.stats_url) as r:
            return json.load(r)

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.stats_url, method="DELETE")).read()

    def token(self):
        if not self._token:
            body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "interaction-content:read",
                                           "client_id": self.client_id, "client_secret": self.client_secret}).encode()
            with urllib.request.urlopen(self.auth_url, data=body) as r:
                self._token = json.load(r)["access_token"]
        return self._token

    def get_json(self, url):
        req = urllib.request.Request(url, headers={"Accept": "application/vnd.newvoicemedia.v3+json",
                                                   "Authorization": "Bearer " + self.token()})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def interactions(self, days=7):
        end = time.time() + 3600
        start = end - days * 86400
        items, cont = [], None
        fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        while True:
            q = {"start": fmt(start), "end": fmt(end), "limit": "1000"}
            if cont:
                q["continuationToken"] = cont
            page = self.get_json(self.api_url + "/interactions?" + urllib.parse.urlencode(q))
            items += page["items"]
            cont = page["meta"].get("nextContinuationToken")
            if not cont:
                return items

    def content_url(self, guid, key):
        return f"{self.api_url}/interactions/{guid}/content/{key}"

    def curl_args(self):
        return ["-s", "-H", "Accept: application/vnd.newvoicemedia.v3+json",
                "-H", "Authorization: Bearer " + self.token()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Mount:
    """A mount with a fresh cache directory of its own (or `cache_dir`, to remount one)."""

    def __init__(self, emu, extra=(), cache_dir=None, binary=None):
        self.dir = tempfile.mkdtemp(prefix="vccfs-bench-")
        self.path = os.path.join(self.dir, "mnt")
        os.mkdir(self.path)
        cache = cache_dir or os.path.join(self.dir, "cache")
        env = dict(os.environ, VCC_CLIENT_ID=emu.client_id, VCC_CLIENT_SECRET=emu.client_secret,
                   XDG_CACHE_HOME=os.path.join(self.dir, "xdg"))
        self.proc = subprocess.Popen([binary or BIN, "mount", self.path, "--api-url", emu.api_url, "--auth-url", emu.auth_url,
                                      "--from", "8d", "--cache-dir", cache, *extra], env=env,
                                     stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("vccfs mount did not come up")
            time.sleep(0.05)

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.path], check=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t


def biggest(items, kind=None):
    best = None
    for i in items:
        for c in i["content"]:
            if kind and c["type"] != kind:
                continue
            if best is None or c["contentLength"] > best[2]:
                best = (i["guid"], c["contentKey"], c["contentLength"])
    return best


rows = []


def row(case, vccfs, baseline, ratio, target, note=""):
    rows.append({"case": case, "vccfs": vccfs, "baseline": baseline, "ratio": ratio, "target": target, "note": note})
    log(f"  {case}: vccfs {vccfs} | baseline {baseline} | ratio {ratio} (target {target}) {note}")


def sequential_case(emu, label, target, runs=3):
    """Cold reads on fresh mounts, alternating with curl downloads of the same file; the
    machine is shared (the emulator runs on the same cores), so report medians."""
    items = emu.interactions()
    guid, key, size = biggest(items, "screenRecording")
    mib = size / 2**20
    t_curl, t_cold, reqs = [], [], []
    for run in range(runs):
        t_curl.append(timed(["curl", *emu.curl_args(), "-o", "/dev/null", emu.content_url(guid, key)]))
        m = Mount(emu)
        try:
            path = os.path.join(m.path, "interactions", guid, key)
            emu.reset()
            t_cold.append(timed(["cat", path], stdout=subprocess.DEVNULL))
            reqs.append(emu.stats()["content_requests"])
            if label == "throttled" and run == runs - 1:
                cached_cases(m, path, mib)
        finally:
            m.stop()
    c, v = statistics.median(t_curl), statistics.median(t_cold)
    spread = lambda ts: "/".join(f"{mib / t:.0f}" for t in ts)
    row(f"1 sequential {mib:.0f} MiB ({label})", f"{mib / v:.0f} MB/s ({statistics.median(reqs):.0f} requests)",
        f"curl {mib / c:.0f} MB/s", f"{c / v:.2f}x", target,
        f"median of {runs}; vccfs {spread(t_cold)}, curl {spread(t_curl)} MB/s")


def cached_cases(m, path, mib):
    """2 (re-read) and 6 (peak RSS) on a mount that has just read the big file."""
    local = os.path.join(m.dir, "local.bin")
    subprocess.run(["cp", path, local], check=True)
    timed(["cat", local], stdout=subprocess.DEVNULL)
    t_local = min(timed(["cat", local], stdout=subprocess.DEVNULL) for _ in range(3))
    t_warm = min(timed(["cat", path], stdout=subprocess.DEVNULL) for _ in range(3))
    row("2 re-read (cached)", f"{mib / t_warm:.0f} MB/s", f"local file {mib / t_local:.0f} MB/s",
        f"{t_local / t_warm:.2f}x", ">= 0.5x")
    os.unlink(local)
    rss = m.peak_rss_mib()
    row("6 peak RSS during 1-2", f"{rss:.0f} MiB", "cache 256 MiB + 64", f"{rss / 320:.2f} of bound",
        "<= 320 MiB")


def random_case(emu):
    items = emu.interactions()
    guid, key, size = biggest(items, "screenRecording")
    url = emu.content_url(guid, key)
    curl = []
    rnd = random.Random(7)
    for _ in range(20):
        off = rnd.randrange(0, size // 4096) * 4096
        out = subprocess.run(["curl", *emu.curl_args(), "-o", "/dev/null", "-w", "%{time_total}",
                              "-H", f"Range: bytes={off}-{off + 4095}", url], capture_output=True, text=True, check=True)
        curl.append(float(out.stdout))
    m = Mount(emu)
    try:
        path = os.path.join(m.path, "interactions", guid, key)
        emu.reset()
        lat = []
        fd = os.open(path, os.O_RDONLY)
        for _ in range(200):
            off = rnd.randrange(0, size // 4096) * 4096
            t = time.perf_counter()
            os.pread(fd, 4096, off)
            lat.append(time.perf_counter() - t)
        os.close(fd)
        reqs = emu.stats()["content_requests"]
    finally:
        m.stop()
    p50, p99 = statistics.median(lat), sorted(lat)[int(len(lat) * 0.99) - 1]
    c50 = statistics.median(curl)
    row("3 random 4 KiB reads", f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, {reqs / 200:.2f} req/read",
        f"curl range p50 {c50 * 1000:.1f} ms", f"{p50 / c50:.2f}x", "<= 1.5x, <= 1 req/read")


def grep_case(emu):
    items = emu.interactions()
    files = [(i["guid"], "transcript") for i in items if any(c["contentKey"] == "transcript" for c in i["content"])]
    cfg = os.path.join(tempfile.gettempdir(), "vccfs-bench-curl.cfg")
    with open(cfg, "w") as f:
        for g, k in files:
            f.write(f'url = "{emu.content_url(g, k)}"\noutput = "/dev/null"\n')
    emu.reset()
    t_curl = timed(["curl", *emu.curl_args(), "-K", cfg])
    m = Mount(emu)
    try:
        emu.reset()
        t = time.perf_counter()
        subprocess.run(["grep", "-rl", "--include=transcript", GREP_WORD, os.path.join(m.path, "interactions")],
                       stdout=subprocess.DEVNULL, check=False)
        t_grep = time.perf_counter() - t
        s = emu.stats()
    finally:
        m.stop()
    row(f"4 grep -r over {len(files)} transcripts", f"{t_grep:.2f} s ({s['content_requests']} content requests)",
        f"sequential curl {t_curl:.2f} s", f"{t_grep / t_curl:.3f}x", "<= 0.1x, requests <= files")


def audit_case():
    """10: grep -r over the ~2,000 transcripts of an unthrottled tenant, warm (a first
    grep has read them all), with --audit-log against without, in the same run: the
    log costs one queued line per open and must not slow the reader down."""
    emu = Emulator(["--interactions", "3300", "--days", "6"])
    try:
        n = sum(1 for i in emu.interactions() if any(c["contentKey"] == "transcript" for c in i["content"]))
        grep = ["grep", "-rl", "--include=transcript", GREP_WORD]
        times, lines = {}, 0
        for tag in ("without", "with"):
            logdir = tempfile.mkdtemp(prefix="vccfs-bench-audit-")
            path = os.path.join(logdir, "audit.log")
            m = Mount(emu, ("--audit-log", path) if tag == "with" else ())
            try:
                root = os.path.join(m.path, "interactions")
                subprocess.run(grep + [root], stdout=subprocess.DEVNULL, check=False)
                times[tag] = min(timed(grep + [root], stdout=subprocess.DEVNULL) for _ in range(3))
            finally:
                m.stop()
                if tag == "with" and os.path.exists(path):
                    with open(path) as f:
                        lines = sum(1 for _ in f)
                shutil.rmtree(logdir, ignore_errors=True)
        row(f"12 grep -r over {n} transcripts, warm, --audit-log", f"{times['with']:.2f} s ({lines} audit lines)",
            f"without {times['without']:.2f} s", f"{times['with'] / max(times['without'], 1e-3):.2f}x", "<= 1.1x")
    finally:
        emu.stop()


def rsync_case(emu):
    m = Mount(emu)
    work = tempfile.mkdtemp(prefix="vccfs-bench-rsync-")
    try:
        a, b, c = (os.path.join(work, x) for x in "abc")
        subprocess.run(["rsync", "-a", m.path + "/", a + "/"], check=True)
        emu.reset()
        t_second = timed(["rsync", "-a", m.path + "/", a + "/"])
        s = emu.stats()
        subprocess.run(["rsync", "-a", a + "/", b + "/"], check=True)
        t_local = timed(["rsync", "-a", a + "/", b + "/"])
        n = sum(len(fs) for _, _, fs in os.walk(a))
        row(f"5 second rsync -a ({n} files)", f"{t_second:.2f} s ({s['content_requests']} content requests)",
            f"local rsync {t_local:.2f} s", f"{t_second / max(t_local, 1e-3):.2f}x", "0 requests, <= 2x")
        del c
    finally:
        m.stop()
        shutil.rmtree(work, ignore_errors=True)


PERSIST_MODES = (
    ("sealed", ()),
    ("none", ("--disk-encryption", "none")),
    ("none, no passthrough", ("--disk-encryption", "none", "--no-passthrough")),
)


def persist_case(emu):
    """7, 8: after a remount, grep -r and a sequential read come from the disk tier, in
    each --disk-encryption mode; then sealed against plain without passthrough."""
    got = {tag: persist_mode(emu, tag, extra) for tag, extra in PERSIST_MODES}
    sealed, plain = got["sealed"], got["none, no passthrough"]
    n, mib = sealed["n"], sealed["mib"]
    row(f"7s grep -r over {n} transcripts after a remount, sealed vs plain",
        f"{sealed['grep']:.2f} s", f"{plain['grep']:.2f} s (--disk-encryption none --no-passthrough)",
        f"{sealed['grep'] / plain['grep']:.2f}x", "<= 1.2x")
    row(f"8s sequential {mib:.0f} MiB after a remount, sealed vs plain",
        f"{mib / sealed['seq']:.0f} MB/s", f"{mib / plain['seq']:.0f} MB/s (--disk-encryption none --no-passthrough)",
        f"{plain['seq'] / sealed['seq']:.2f}x", ">= 0.8x")


def persist_mode(emu, tag, extra):
    """Cases 7, 7c, 8, 8c with the mount flags `extra`; the warm times, for comparing."""
    items = emu.interactions()
    keep = tempfile.mkdtemp(prefix="vccfs-bench-persist-")
    cache = os.path.join(keep, "cache")
    guid, key, size = biggest(items, "screenRecording")
    mib = size / 2**20
    out = {"mib": mib}
    try:
        m = Mount(emu, extra, cache_dir=cache)
        root = os.path.join(m.path, "interactions")
        grep = ["grep", "-rl", "--include=transcript", GREP_WORD]
        subprocess.run(grep + [root], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["cat", os.path.join(root, guid, key)], stdout=subprocess.DEVNULL, check=True)
        local = os.path.join(keep, "local")
        subprocess.run(["rsync", "-a", "--include=*/", "--include=transcript", "--exclude=*", root + "/",
                        local + "/"], check=True)
        big = os.path.join(keep, "big.bin")
        subprocess.run(["cp", os.path.join(root, guid, key), big], check=True)
        m.stop()
        n = sum(1 for _, _, fs in os.walk(local) for f in fs if f == "transcript")
        out["n"] = n
        mnt_big = lambda m: os.path.join(m.path, "interactions", guid, key)
        # Like for like: a remount finds the cache's files in the page cache, as the
        # local files are after a first read; a reboot finds neither there (7c, 8c).
        for cold in (False, True):
            drop = ["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]
            if cold:
                subprocess.run(drop, check=False)
                t_local = timed(grep + [local], stdout=subprocess.DEVNULL)
                subprocess.run(drop, check=False)
                t_big_local = timed(["cat", big], stdout=subprocess.DEVNULL)
                subprocess.run(drop, check=False)
            else:
                timed(grep + [local], stdout=subprocess.DEVNULL)
                t_local = min(timed(grep + [local], stdout=subprocess.DEVNULL) for _ in range(3))
                timed(["cat", big], stdout=subprocess.DEVNULL)
                t_big_local = min(timed(["cat", big], stdout=subprocess.DEVNULL) for _ in range(3))
            m = Mount(emu, extra, cache_dir=cache)
            try:
                emu.reset()
                t = time.perf_counter()
                subprocess.run(grep + [os.path.join(m.path, "interactions")], stdout=subprocess.DEVNULL, check=False)
                t_grep = time.perf_counter() - t
                s = emu.stats()
                label, target = ("7c", "(cold: after a reboot)") if cold else ("7", "<= 3x, 0 requests")
                row(f"{label} [{tag}] grep -r over {n} transcripts after a {'reboot' if cold else 'remount'}",
                    f"{t_grep:.2f} s ({s['content_requests']} content requests)",
                    f"local grep {t_local:.2f} s", f"{t_grep / t_local:.2f}x", target)
                emu.reset()
                t_disk = timed(["cat", mnt_big(m)], stdout=subprocess.DEVNULL)
                s = emu.stats()
                label, target = ("8c", "(cold: after a reboot)") if cold else ("8", ">= 0.5x, 0 requests")
                row(f"{label} [{tag}] sequential {mib:.0f} MiB after a {'reboot' if cold else 'remount'}",
                    f"{mib / t_disk:.0f} MB/s ({s['content_requests']} content requests)",
                    f"local file {mib / t_big_local:.0f} MB/s", f"{t_big_local / t_disk:.2f}x", target)
                if not cold:
                    out["grep"], out["seq"] = t_grep, t_disk
            finally:
                m.stop()
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    return out


def fleet_case():
    """9: three mounts on one Redis grep the same transcripts at once, against one mount
    alone; the emulator allows 160 requests a minute, the mounts' budget is 150."""
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    tenant = ["--interactions", "400", "--days", "6", "--rate-limit", "160"]
    try:
        time.sleep(0.5)
        results = {}
        for label, mounts in (("one", 1), ("three", 3)):
            emu = Emulator(tenant)
            try:
                extra = ["--max-rpm", "150"] + (["--redis", f"redis://127.0.0.1:{redis_port}"] if mounts > 1 else [])
                ms = [Mount(emu, extra) for _ in range(mounts)]
                try:
                    emu.reset()
                    t = time.perf_counter()
                    procs = [subprocess.Popen(["grep", "-rl", "--include=transcript", GREP_WORD,
                                               os.path.join(m.path, "interactions")], stdout=subprocess.DEVNULL)
                             for m in ms]
                    for p in procs:
                        p.wait()
                    wall = time.perf_counter() - t
                    s = emu.stats()
                    results[label] = (wall, s["content_requests"], s["status_429"])
                finally:
                    for m in ms:
                        m.stop()
            finally:
                emu.stop()
        (w1, r1, _), (w3, r3, e3) = results["one"], results["three"]
        row("9 fleet: 3 mounts x grep -r (Redis)", f"{w3:.1f} s, {r3} content requests, {e3} x 429",
            f"one mount {w1:.1f} s, {r1} requests", f"{r3 / max(r1, 1):.2f}x requests, {w3 / w1:.2f}x time",
            "<= 1.1x requests, <= 1.2x time, 0 x 429")
    finally:
        redis.terminate()
        redis.wait()


MIB = 2**20
WHOLE = 16 * MIB
MEDIA_ARGS = ["--big-file-mib", "57", "--long-call-secs", "3600", "--interactions", "40", "--days", "6"]


def media_files(items):
    """The 57 MiB WebM, the 1-hour WAV, and the largest WAV and WebM of at most 16 MiB."""
    def pick(kinds, small):
        best = None
        for i in items:
            for c in i["content"]:
                n = c["contentLength"]
                if c["type"] in kinds and (n <= WHOLE) == small and (best is None or n > best[2]):
                    best = (i["guid"], c["contentKey"], n)
        return best
    webm = ("screenRecording", "videoRecording")
    return [("WebM", pick(webm, False)), ("WAV", pick(("callRecording",), False)),
            ("WebM", pick(webm, True)), ("WAV", pick(("callRecording",), True))]


def floor_requests(size):
    """One request per file of at most 16 MiB; size/8MiB + 2 (head, tail) above."""
    return 1 if size <= WHOLE else size / (8 * MIB) + 2


def probe_and_decode(emu, path, binary=None):
    """Content requests of `ffprobe` then `ffmpeg -i ... -f null -` on a fresh mount."""
    m = Mount(emu, binary=binary)
    try:
        full = os.path.join(m.path, "interactions", path)
        emu.reset()
        subprocess.run(["ffprobe", "-v", "error", full], check=True, stdout=subprocess.DEVNULL)
        probe = emu.stats()
        subprocess.run(["ffmpeg", "-v", "error", "-i", full, "-f", "null", "-"], check=True)
        return probe, emu.stats()
    finally:
        m.stop()


def media_case():
    """10: requests for ffprobe + a full decode, against the floor (and an older build's
    count when VCCFS_BEFORE_BIN names one)."""
    emu = Emulator(MEDIA_ARGS)
    try:
        for kind, (guid, key, size) in media_files(emu.interactions()):
            path = os.path.join(guid, key)
            probe, after = probe_and_decode(emu, path)
            floor = floor_requests(size)
            purposes = ", ".join(f"{k} {v}" for k, v in sorted(after.get("content_requests_by_purpose", {}).items()))
            before = "old build not given (VCCFS_BEFORE_BIN)"
            if BEFORE_BIN:
                b_probe, b_after = probe_and_decode(emu, path, BEFORE_BIN)
                before = f"before: {b_probe['content_requests']} + {b_after['content_requests'] - b_probe['content_requests']}"
            n = after["content_requests"]
            row(f"10 media: ffprobe + decode, {size / MIB:.1f} MiB {kind}",
                f"{n} requests ({probe['content_requests']} probe + {n - probe['content_requests']} decode)",
                before, f"{n / floor:.2f} of floor", f"<= {floor:.1f}", purposes)
    finally:
        emu.stop()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = ("sequential", "random", "grep", "persist", "rsync", "fleet", "media", "audit", "scale", "window")
# Long cases, run only when named.
NAMED_ONLY = ("scale", "window")


def wanted(name):
    """Cases to run: all but `scale` and `window`, or those named on the command line
    (CASES)."""
    if len(sys.argv) < 2:
        return name not in NAMED_ONLY
    return name in sys.argv[1:]


def main():
    t0 = time.time()
    scale_knobs = bench_scale.take_knobs(sys.argv)
    window_knobs = bench_window.take_knobs(sys.argv)
    unknown = [a for a in sys.argv[1:] if a not in CASES]
    if unknown:
        raise SystemExit(f"unknown case {' '.join(unknown)} (choose from: {' '.join(CASES)})")
    if any(wanted(c) for c in ("sequential", "random", "grep", "persist")):
        log("throttled emulator (30 ms, 25 MB/s per connection)...")
        emu = Emulator([*THROTTLE, "--big-file-mib", "256", "--interactions", "3300", "--days", "6"])
    else:
        emu = None
    try:
        if wanted("sequential"):
            sequential_case(emu, "throttled", ">= 6x")
        if wanted("random"):
            random_case(emu)
        if wanted("grep"):
            grep_case(emu)
        if wanted("persist"):
            persist_case(emu)
    finally:
        if emu:
            emu.stop()
    if wanted("sequential") or wanted("rsync"):
        log("unthrottled emulator...")
        emu = Emulator(["--big-file-mib", "256", "--interactions", "300", "--days", "6"])
        try:
            if wanted("sequential"):
                sequential_case(emu, "unthrottled", ">= 0.8x")
            if wanted("rsync"):
                rsync_case(emu)
        finally:
            emu.stop()
    if wanted("audit"):
        log("audit: grep -r with and without --audit-log...")
        audit_case()
    if wanted("media"):
        log("media: ffprobe + decode against the request floor...")
        media_case()
    if wanted("fleet"):
        log("fleet: three mounts on one Redis...")
        fleet_case()
    if wanted("scale"):
        bench_scale.scale_case(BIN, Emulator, row, log, scale_knobs)
    if wanted("window"):
        bench_window.window_case(BIN, Emulator, row, log, window_knobs)
    if not rows:
        raise SystemExit(f"no case selected (choose from: {' '.join(CASES)})")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(time.time() - t0),
                   "rows": rows}, f, indent=2)
    w = [max(len(str(r[k])) for r in rows + [dict(case="case", vccfs="vccfs", baseline="baseline", ratio="ratio",
                                                      target="target")]) for k in ("case", "vccfs", "baseline", "ratio", "target")]
    hdr = ("case", "vccfs", "baseline", "ratio", "target")
    print(" | ".join(h.ljust(x) for h, x in zip(hdr, w)))
    print("-+-".join("-" * x for x in w))
    for r in rows:
        print(" | ".join(str(r[k]).ljust(x) for k, x in zip(hdr, w)))
    for r in rows:
        if r["note"]:
            print(f"  {r['case']}: {r['note']}")
    print(f"\nresults: {OUT}")


if __name__ == "__main__":
    main()
