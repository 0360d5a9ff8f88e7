"""One real demo server for the demo tests: `genzoo demo` in a subprocess, on a free local port; and a
decompression bomb to upload to it."""

import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import pytest

STARTUP_LIMIT_S = 60  # generous for a loaded 2-core CI machine; it takes ~10 s idle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, limit: float) -> float:
    """Seconds until `url` answers; fails the test if the server dies or takes longer than `limit`."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if process.poll() is not None:
            pytest.fail(f"genzoo demo exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"genzoo demo did not serve {url} within {limit} s")


def start_demo(folder, **env) -> tuple[subprocess.Popen, str]:
    """`genzoo demo --port P` started in `folder` with `env` added to its environment, its log in folder/demo.log
    (the process's ``log_path``): (process, url). It runs outside the checkout, as the `genzoo` console script
    does: the CLI finds demo/app.py itself."""
    port = free_port()
    log = (folder / "demo.log").open("w")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **env}
    command = [sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main())", "demo", "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child holds its own copy
    process.log_path = folder / "demo.log"
    return process, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def demo_process(tmp_path_factory):
    """(process, url, seconds to start) of `genzoo demo --port P`, stopped after the session; its log in demo.log
    (``demo_log``)."""
    process, url = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        startup = wait_until_serving(url, process, STARTUP_LIMIT_S)
        yield process, url, startup
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def demo_log(demo_process):
    """The path of the demo server's log (its stdout and stderr)."""
    return demo_process[0].log_path


@pytest.fixture(scope="session")
def demo_server(demo_process):
    """(url, seconds to start) of the demo server."""
    return demo_process[1:]


@pytest.fixture(scope="session")
def client(demo_server):
    from gradio_client import Client

    return Client(demo_server[0], verbose=False)


BOMB_SIDE = 13000  # pixels a side: 169 million, under PIL's own refusal (179 million), above the demo's cap


def write_bomb_png(path, side: int = BOMB_SIDE):
    """A valid PNG of side x side black 1-bit pixels: about 20 KB on disk, 169 MB once decoded to grayscale."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory):
    """The path (str) of a decompression bomb: bomb.png, 13000x13000 pixels in about 20 KB."""
    return str(write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png"))


@pytest.fixture(scope="session")
def huge_bomb_png(tmp_path_factory):
    """A bomb of 20000x20000 pixels (400 million), which PIL's own check refuses as it opens it."""
    return str(write_bomb_png(tmp_path_factory.mktemp("bomb") / "huge.png", side=20000))
