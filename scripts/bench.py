#!/usr/bin/env python3
"""vccfs benchmarks; run through scripts/bench.sh. Every vccfs figure has a baseline
measured in the same run (curl against the same emulator, or local files)."""

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

BIN = os.path.abspath("target/release/vccfs")
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
    def __init__(self, emu, extra=()):
        self.dir = tempfile.mkdtemp(prefix="vccfs-bench-")
        self.path = os.path.join(self.dir, "mnt")
        os.mkdir(self.path)
        env = dict(os.environ, VCC_CLIENT_ID=emu.client_id, VCC_CLIENT_SECRET=emu.client_secret)
        self.proc = subprocess.Popen([BIN, "mount", self.path, "--api-url", emu.api_url, "--auth-url", emu.auth_url,
                                      "--from", "8d", *extra], env=env, stdout=subprocess.DEVNULL)
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


def wanted(name):
    """Cases to run: all, or those named on the command line (sequential, random, grep, rsync)."""
    return len(sys.argv) < 2 or name in sys.argv[1:]


def main():
    t0 = time.time()
    log("throttled emulator (30 ms, 25 MB/s per connection)...")
    emu = Emulator([*THROTTLE, "--big-file-mib", "256", "--interactions", "3300", "--days", "6"])
    try:
        if wanted("sequential"):
            sequential_case(emu, "throttled", ">= 6x")
        if wanted("random"):
            random_case(emu)
        if wanted("grep"):
            grep_case(emu)
    finally:
        emu.stop()
    log("unthrottled emulator...")
    emu = Emulator(["--big-file-mib", "256", "--interactions", "300", "--days", "6"])
    try:
        if wanted("sequential"):
            sequential_case(emu, "unthrottled", ">= 0.8x")
        if wanted("rsync"):
            rsync_case(emu)
    finally:
        emu.stop()
    if not rows:
        raise SystemExit("no case selected (choose from: sequential random grep rsync)")
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
