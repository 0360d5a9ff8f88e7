"""The Gradio demo under load and misuse: the real server (``genzoo demo``) driven by gradio_client.

    python benchmarks/demo_load.py                  # 2,000 mixed requests from 8 threads (~10 minutes on 2 cores)
    python benchmarks/demo_load.py --quick          # 200 requests, no idle phase (~2 minutes)
    python benchmarks/demo_load.py --requests 500 --threads 4 --json out.json

The server runs in a subprocess on 127.0.0.1 (a free port) with its own temporary folder (TMPDIR), so that the
files it writes (its PNG/GIF downloads and Gradio's cache of inputs and outputs) can be counted. Phases:

1. warm-up: every request kind three times (each model loads on first use), then ``--warmup`` mixed requests;
   the server's resident memory (RSS, /proc/PID/status) after it is the baseline.
2. load: ``--requests`` mixed requests over every tab's API endpoint (cheap settings of each: the 8x8 digits
   models, a few diffusion steps, short texts), sent by ``--threads`` threads, each with its own gradio_client
   session. Every output file is downloaded and decoded in full (a truncated PNG or GIF is a failure). Reports
   failures, latency p50/p99 (queue wait included), throughput, RSS at each tenth of the run and its change
   from the baseline.
3. burst: ``--burst`` requests submitted at once (half of them identical, so that the same output is written by
   concurrent jobs): each must be answered with whole files or refused with "queue full", nothing else.
4. misuse: a string for a slider, a text file uploaded as an image, a text file as the drawing: each must be
   refused in one line that says what was wrong (not Gradio's generic "Error").
5. bomb: a 13000x13000 RGB PNG of under 1 MB (507 MB once decoded) uploaded to every image input (the
   Classifier's upload, the Anomalies tab's files and drawing, the Latent walk's images): each must be refused,
   and the server's RSS and peak RSS (VmHWM) must stay where they were.
6. linger (not with --quick): the server stays idle for the demo's CACHE_AGE + 2 CACHE_SWEEP seconds; its cache
   sweep must then have deleted every file it wrote (the number of temp files is bounded by their age).
7. exit: the server gets SIGTERM; it must exit promptly and leave no file in its temporary folder. The log
   must hold no traceback.

The pass criteria (the project's issue): 0 failures, RSS within 50 MB of the baseline, every burst request answered
with whole files or refused with "queue full", every misuse refused in one line, the bomb refused with RSS and peak
RSS unchanged (within 20 MB), no temp file left after the idle time nor after SIGTERM, no traceback in the log.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import zlib  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageSequence  # noqa: E402

RSS_LIMIT_MB = 50  # the load phase's RSS may end at most this far above its post-warm-up level
BOMB_LIMIT_MB = 20  # the bomb phase may move RSS (and its peak) at most this much
BOMB_SIDE = 13000


# -- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int) -> tuple[subprocess.Popen, Path, Path]:
    """`genzoo demo --port PORT` with TMPDIR = folder/tmp; its log in folder/server.log."""
    tmp, log = folder / "tmp", folder / "server.log"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    command = [sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main())", "demo",
               "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the demo exited with {process.returncode}; its log:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                break
        except OSError:
            if time.perf_counter() - start > 120:
                process.kill()
                raise SystemExit("the demo did not serve within 120 s") from None
            time.sleep(0.25)
    return process, tmp, log


def memory(pid: int) -> dict[str, float]:
    """The process's resident memory now (rss) and at its peak (hwm), in MB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                fields[line[2:5].lower()] = int(line.split()[1]) / 1024
    return fields


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


class FileCounter(threading.Thread):
    """Counts the files under `folder` every `every` seconds; `most` is the largest count seen."""

    def __init__(self, folder: Path, every: float = 2.0):
        super().__init__(daemon=True)
        self.folder, self.every, self.most, self.last = folder, every, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.last = count_files(self.folder)
            self.most = max(self.most, self.last)


# -- inputs ----------------------------------------------------------------------------------------


def write_bomb(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid side x side RGB PNG of black pixels: well under 1 MB on disk, 3 * side**2 bytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\0" * (1 + 3 * side), zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8 bits, RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def write_inputs(folder: Path) -> dict[str, str]:
    """Upload files: an 8x8 digit PNG, a CSV of digits, a drawing, a text file named .png, and the bomb."""
    from zoo.data.digits import digits_split

    x, _ = digits_split("test")
    files = {"digit": folder / "digit.png", "csv": folder / "digits.csv", "drawing": folder / "drawing.png",
             "text": folder / "text.png", "notes": folder / "notes.txt", "big": folder / "big.csv",
             "bomb": folder / "bomb.png"}
    Image.fromarray((x[0, 0].numpy() * 255).round().astype(np.uint8)).resize((32, 32)).save(files["digit"])
    rows = (x[:4, 0].reshape(4, 64).numpy() * 16).round().astype(int).tolist()
    files["csv"].write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    canvas = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(128, 40), (128, 216)], fill="black", width=24)
    canvas.save(files["drawing"])
    files["text"].write_text("not an image\n")
    files["notes"].write_text("not an image either\n")
    files["big"].write_text("1.0,2.0\n" * 150_000)  # 1.2 MB: over the demo's 1 MB cap
    write_bomb(files["bomb"])
    return {k: str(v) for k, v in files.items()}


def request(kind: int, seed: int, files: dict[str, str]) -> tuple[str, tuple]:
    """Request kind `kind` (0..KINDS-1) of the mixed load with `seed`: (api name, arguments), cheap settings of
    every tab."""
    from gradio_client import handle_file

    drawing = {"background": None, "layers": [], "composite": handle_file(files["drawing"])}
    kinds = [
        ("/images", ("vae-digits", 16, seed, "any", 25, 1.0, "ddim")),
        ("/images", ("cvae-digits", 10, seed, str(seed % 10), 25, 1.0, "ddim")),
        ("/images", ("dcgan-digits", 16, seed, "any", 25, 1.0, "ddim")),
        ("/images", ("gmm-digits", 8, seed, "any", 25, 1.0, "ddim")),
        ("/images", ("ddpm-digits", 4, seed, "any", 5, 2.0, "ddim")),
        ("/latent_walk", ("vae-digits", seed, seed + 1, 6, "any", None, None)),
        ("/latent_walk", ("cvae-digits", seed, seed + 1, 6, str(seed % 10), None, None)),
        ("/mixtures", ("blobs", None, 200, 3, "full", seed)),
        ("/hmm_sample", ("hmm-shakespeare-char", 120, seed)),
        ("/viterbi", ("hmm-shakespeare-char", "To be, or not to be, that is the question."[:20 + seed % 20])),
        ("/text", ("gpt-shakespeare-char", "ROMEO:", 30, 0.8, 0, 1.0, seed)),
        ("/anomalies", ("gmm-digits", handle_file(files["csv"]), None, None, 1 + seed % 4)),
        ("/anomalies", ("nb-digits", None, [handle_file(files["digit"])], drawing, 2)),
        ("/classify", ("nb-digits", None, handle_file(files["digit"]))),
        ("/classify", ("nb-digits", drawing, None)),
        ("/class_samples", ("nb-digits", str(seed % 10), 8, seed)),
        ("/molecules", ("gpt-moses", 4, seed)),
        ("/score_molecule", ("gpt-moses", "CCOc1ccccc1"[:6 + seed % 6])),
        ("/text_to_image", ("ddpm-mnist-5k-text", "a thick 7 leaning right", 2, seed, 3.0, 3)),
    ]
    return kinds[kind]


KINDS = 19


def mixed(i: int, files: dict[str, str]) -> tuple[str, tuple]:
    """Request i of the mixed load: a kind and a seed drawn with random.Random(i); i < 0: kind -1 - i, seed 0."""
    if i < 0:
        return request(-1 - i, 0, files)
    rng = random.Random(i)
    return request(rng.randrange(KINDS), rng.randrange(1000), files)


def check_files(value: Any) -> int:
    """Fetch every output file in `value` (gradio_client's file dicts, nested in lists and dicts) from the server and
    decode it in full; how many there were. A truncated or unreadable file raises."""
    if isinstance(value, dict) and isinstance(value.get("url"), str) and "path" in value:
        with urllib.request.urlopen(value["url"], timeout=60) as response:
            data = response.read()  # http.client raises IncompleteRead if it is shorter than its Content-Length
            declared = response.headers.get("Content-Length")
        if declared is not None and int(declared) != len(data):
            raise OSError(f"{value['path']}: {len(data)} bytes of {declared}")
        with Image.open(io.BytesIO(data)) as image:
            for frame in ImageSequence.Iterator(image):
                frame.load()
        return 1
    if isinstance(value, dict):
        return sum(check_files(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(check_files(v) for v in value)
    return 0


def client(url: str, **kwargs: Any):
    """A gradio_client session that leaves output files on the server (``check_files`` fetches them)."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, **kwargs)


# -- phases ----------------------------------------------------------------------------------------


def run_load(url: str, files: dict[str, str], indices: list[int], threads: int, pid: int,
             checkpoints: int = 10) -> dict[str, Any]:
    """Send the mixed requests `indices` from `threads` threads; latencies, failures and RSS along the way."""
    latencies, failures, lock, done = [], [], threading.Lock(), [0]
    trace, step = [], max(1, len(indices) // checkpoints)
    queue = list(indices)

    def worker(t: int) -> None:
        c = client(url)
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop(0)
            api, args = mixed(i, files)
            start = time.perf_counter()
            try:
                check_files(c.predict(*args, api_name=api))
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as e:  # noqa: BLE001 (counted and reported)
                with lock:
                    failures.append(f"{api} #{i}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            with lock:
                done[0] += 1
                if done[0] % step == 0:
                    trace.append(round(memory(pid)["rss"]))

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(indices), "failures": failures, "seconds": seconds,
            "p50": statistics.median(latencies) if latencies else None,
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
            "rss_trace": trace}


def run_burst(url: str, n: int) -> dict[str, Any]:
    """`n` image requests at once from one client (half the same seed): answered, refused "queue full", or wrong."""
    c = client(url, max_workers=n + 8)
    jobs = [c.submit("vae-digits", 16, 0 if i % 2 else i, "any", 25, 1.0, "ddim", api_name="/images")
            for i in range(n)]
    answered, full, other = 0, 0, []
    for job in jobs:
        try:
            files = check_files(job.result(timeout=600))
            if files != 2:
                other.append(f"{files} files instead of 2")
            else:
                answered += 1
        except Exception as e:  # noqa: BLE001
            if "queue is full" in str(e).lower():
                full += 1
            else:
                other.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return {"burst": n, "answered": answered, "queue_full": full, "other": other}


def run_misuse(url: str, files: dict[str, str]) -> list[dict[str, Any]]:
    """Bad input through the real server: each answer must be one line naming the problem."""
    from gradio_client import handle_file

    c = client(url)
    text_drawing = {"background": None, "layers": [], "composite": handle_file(files["text"])}
    cases = [
        ("a string for a slider", "/images", ("vae-digits", "many", 0, "any", 25, 1.0, "ddim"), "samples"),
        ("a string for a number", "/images", ("vae-digits", 4, "zero", "any", 25, 1.0, "ddim"), "seed"),
        ("a text file as an image upload", "/classify", ("nb-digits", None, handle_file(files["text"])),
         "not an image"),
        ("a text file as the drawing", "/classify", ("nb-digits", text_drawing, None), "not an image"),
        ("a text file among images", "/anomalies", ("nb-digits", None, [handle_file(files["text"])], None, 2),
         "not an image"),
        ("a .txt file among images", "/anomalies", ("nb-digits", None, [handle_file(files["notes"])], None, 2),
         "Invalid file type"),
        ("a string for an image", "/classify", ("nb-digits", None, "digit.png"), "cannot read"),
        ("an unknown model", "/images", ("vae-digitz", 4, 0, "any", 25, 1.0, "ddim"), "not in the list of choices"),
        ("a label out of range", "/images", ("cvae-digits", 4, 0, "12", 25, 1.0, "ddim"), "label must be"),
        ("an upload over the size cap", "/mixtures", ("blobs", handle_file(files["big"]), 200, 2, "full", 0),
         "maximum file size"),
    ]
    rows = []
    for what, api, args, expected in cases:
        try:
            c.predict(*args, api_name=api)
            message = "(accepted)"
        except Exception as e:  # noqa: BLE001
            message = str(e)
        rows.append({"case": what, "message": message,
                     "ok": "\n" not in message.strip() and expected in message and "Traceback" not in message})
    return rows


def run_bomb(url: str, files: dict[str, str], pid: int) -> dict[str, Any]:
    """The bomb to every image input; RSS and peak RSS before and after."""
    from gradio_client import handle_file

    c = client(url)
    bomb = handle_file(files["bomb"])
    drawing = {"background": None, "layers": [], "composite": bomb}
    cases = [("/classify", ("nb-digits", None, bomb)), ("/classify", ("nb-digits", drawing, None)),
             ("/anomalies", ("nb-digits", None, [bomb], None, 2)),
             ("/anomalies", ("nb-digits", None, None, drawing, 2)),
             ("/latent_walk", ("vae-digits", 0, 1, 4, "any", bomb, bomb))]
    time.sleep(1)
    before = memory(pid)
    refused, messages = 0, []
    for api, args in cases:
        try:
            c.predict(*args, api_name=api)
            messages.append(f"{api}: accepted")
        except Exception as e:  # noqa: BLE001
            message = str(e)
            refused += "decompression bomb" in message and "\n" not in message.strip()
            messages.append(f"{api}: {message}")
    time.sleep(1)
    after = memory(pid)
    return {"size_kb": os.path.getsize(files["bomb"]) / 1024, "cases": len(cases), "refused": refused,
            "messages": messages, "rss_before": before["rss"], "rss_after": after["rss"],
            "hwm_before": before["hwm"], "hwm_after": after["hwm"]}


def stop(process: subprocess.Popen) -> tuple[int | None, float]:
    """SIGTERM; the exit code and seconds to exit (None: killed after 30 s)."""
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    return code, time.perf_counter() - start


# -- the report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="mixed requests of the load phase (2000)")
    parser.add_argument("--quick", action="store_true", help="200 requests, a 50-request warm-up")
    parser.add_argument("--threads", type=int, default=8, help="client threads (8)")
    parser.add_argument("--warmup", type=int, default=None, help="mixed warm-up requests (200; --quick: 50)")
    parser.add_argument("--burst", type=int, default=100, help="requests submitted at once (100)")
    parser.add_argument("--linger", type=int, default=None,
                        help="seconds to stay idle before SIGTERM, so that the demo's cache sweep shows (default: "
                             "CACHE_AGE + 2 CACHE_SWEEP; --quick: 0)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (server log, temp folder)")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.requests
    warmup = args.warmup if args.warmup is not None else (50 if args.quick else 200)
    from zoo.cli import load_demo

    demo = load_demo()
    cache_age, cache_sweep = demo.CACHE_AGE, demo.CACHE_SWEEP
    linger = args.linger if args.linger is not None else (0 if args.quick else cache_age + 2 * cache_sweep)

    folder = Path(tempfile.mkdtemp(prefix="genzoo-demo-load-"))
    files = write_inputs(folder)
    process, tmp, log = start_server(folder, free_port())
    url = f"http://127.0.0.1:{process.args[-1]}/"
    pid = process.pid
    counter = FileCounter(tmp)
    counter.start()
    results: dict[str, Any] = {"requests": n, "threads": args.threads, "warmup": warmup, "bomb_side": BOMB_SIDE}
    try:
        print(f"demo at {url} (pid {pid}), idle RSS {memory(pid)['rss']:.0f} MB; working folder {folder}", flush=True)
        warm = run_load(url, files, [-1 - k for k in range(KINDS)] * 3 + list(range(10**6, 10**6 + warmup)),
                        args.threads, pid)
        time.sleep(2)
        results["warmup_failures"] = warm["failures"]
        results["rss_warm"] = memory(pid)["rss"]
        print(f"warm-up: {3 * KINDS + warmup} requests, {len(warm['failures'])} failures, "
              f"RSS {results['rss_warm']:.0f} MB", flush=True)
        load = run_load(url, files, list(range(n)), args.threads, pid)
        time.sleep(2)
        results["load"] = load
        results["rss_end"] = memory(pid)["rss"]
        results["files_during_load"] = counter.most
        print(f"load: {n} requests in {load['seconds']:.0f} s, {len(load['failures'])} failures, "
              f"RSS {results['rss_end']:.0f} MB; RSS along the run: {load['rss_trace']}", flush=True)
        results["burst"] = run_burst(url, args.burst)
        print(f"burst: {results['burst']}", flush=True)
        results["misuse"] = run_misuse(url, files)
        results["bomb"] = run_bomb(url, files, pid)
        results["files_most"] = counter.most
        results["files_idle"] = count_files(tmp)
        if linger:
            print(f"idle for {linger} s: the files older than the demo's CACHE_AGE ({cache_age} s) should go",
                  flush=True)
            time.sleep(linger)
        results["files_before_exit"] = count_files(tmp)
    finally:
        counter.done.set()
        code, seconds = stop(process)
    results["exit_code"], results["exit_seconds"] = code, seconds
    results["files_after_exit"] = count_files(tmp)
    results["left_after_exit"] = [str(p.relative_to(tmp)) for p in tmp.rglob("*")][:10]
    text = log.read_text(errors="replace")
    results["tracebacks_in_log"] = text.count("Traceback")
    results["log_tail"] = text.splitlines()[-15:]

    load, burst, bomb = results.get("load"), results.get("burst"), results.get("bomb")
    rows = []
    if load:
        delta = results["rss_end"] - results["rss_warm"]
        rows += [
            ("mixed requests (threads)", f"{n} ({args.threads})", len(load["failures"]) == 0),
            ("failures", f"{len(load['failures'])}", len(load["failures"]) == 0),
            ("latency p50 / p99", f"{load['p50']:.2f} s / {load['p99']:.2f} s", None),
            ("throughput", f"{n / load['seconds']:.1f} requests/s ({load['seconds']:.0f} s)", None),
            ("RSS after warm-up -> end", f"{results['rss_warm']:.0f} -> {results['rss_end']:.0f} MB "
                                         f"({delta:+.0f} MB)", abs(delta) <= RSS_LIMIT_MB),
            ("RSS each tenth of the run", " ".join(map(str, load["rss_trace"])) + " MB", None),
        ]
    if burst:
        rows.append((f"burst of {burst['burst']} at once", f"{burst['answered']} answered, {burst['queue_full']} "
                     f"queue full, {len(burst['other'])} other", not burst["other"]))
    for case in results.get("misuse", []):
        rows.append((f"misuse: {case['case']}", case["message"][:90], case["ok"]))
    if bomb:
        rows += [(f"bomb ({BOMB_SIDE}x{BOMB_SIDE}, {bomb['size_kb']:.0f} KB)", f"{bomb['refused']} of "
                  f"{bomb['cases']} inputs refused", bomb["refused"] == bomb["cases"]),
                 ("bomb: RSS before -> after", f"{bomb['rss_before']:.0f} -> {bomb['rss_after']:.0f} MB",
                  abs(bomb["rss_after"] - bomb["rss_before"]) <= BOMB_LIMIT_MB),
                 ("bomb: peak RSS before -> after", f"{bomb['hwm_before']:.0f} -> {bomb['hwm_after']:.0f} MB",
                  bomb["hwm_after"] - bomb["hwm_before"] <= BOMB_LIMIT_MB)]
    rows += [("temp files: most during the run", f"{results.get('files_most', counter.most)}", None),
             ("temp files: after the last request", f"{results.get('files_idle')}", None)]
    if linger:
        rows.append((f"temp files: after {linger} s idle", f"{results.get('files_before_exit')}",
                     results.get("files_before_exit") == 0))
    rows += [("SIGTERM: exit code, seconds", f"{code}, {seconds:.1f} s", code is not None),
             ("temp files after SIGTERM", f"{results['files_after_exit']}", results["files_after_exit"] == 0),
             ("tracebacks in the server log", f"{results['tracebacks_in_log']}", results["tracebacks_in_log"] == 0)]
    width = max(len(r[0]) for r in rows)
    print()
    for what, value, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  FAIL")
        print(f"{what:<{width}}  {value}{mark}")
    problems = [*(load["failures"][:10] if load else []), *(burst["other"][:10] if burst else []),
                *(bomb["messages"] if bomb else [])]
    if problems:
        print("\n" + "\n".join(problems))
    if results["tracebacks_in_log"] or not all(ok for _, _, ok in rows if ok is not None):
        print("\nserver log (tail):\n" + "\n".join(results["log_tail"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"\nwrote {args.json}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(ok for _, _, ok in rows if ok is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
