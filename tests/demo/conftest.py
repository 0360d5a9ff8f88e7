"""One real demo server for the demo tests: `genzoo demo` in a subprocess, on a free local port."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

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


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """(url, seconds to start) of `genzoo demo --port P`, stopped after the session; its log in demo.log.

    It runs outside the checkout, as the `genzoo` console script does: the CLI finds demo/app.py itself.
    """
    port = free_port()
    folder = tmp_path_factory.mktemp("demo")
    log = (folder / "demo.log").open("w")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main())", "demo", "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        startup = wait_until_serving(url, process, STARTUP_LIMIT_S)
        yield url, startup
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def client(demo_server):
    from gradio_client import Client

    return Client(demo_server[0], verbose=False)
