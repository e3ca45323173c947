"""``make test-cluster``: ``tiny`` on a real container engine (issue 14, docs/cluster.md).

1. Installs what is missing: Debian's ``docker.io`` and ``debootstrap`` (apt-get), and a
   Compose plugin with ``--abort-on-container-failure`` (>= 2.27; bookworm has none, so the
   ``docker-compose`` package of Debian's unstable suite is fetched with apt-get into the cache
   and unpacked there, never installed into the system).
2. Starts Debian's ``dockerd`` with private paths (data root in the cache, exec root, pid file
   and socket in a temporary folder; ``--iptables=false``: the host's firewall is left alone)
   and stops it at the end.
3. Base image without any registry: ``debootstrap`` of this machine's Debian release from the
   mirror of its apt sources, with Python 3 and pip, the machine's CA bundle and its http(s)
   pip index settings; ``docker import``. Cached as a tar in ``.cluster/`` (git-ignored), and
   the engine's data root stays there too, so a second run reuses both images' layers.
4. The project image by the ``make image`` path (``BASE=`` the base image).
5. ``tiny`` in ``docker compose up --abort-on-container-failure`` from a ``smartnet build``
   folder; its KPI file and every recorded series must equal those of a local
   ``smartnet run`` of ``tiny`` (``--netns NS``: the local run in that network namespace).
6. A 12 h copy of ``tiny`` (a custom scenario file: it runs from the folder's copy) in compose;
   after the first session is flushed the ``dso-1`` container is SIGKILLed: ``up`` must end
   within 10 s, non-zero, its log naming ``dso-1``; every survivor exits non-zero.

Exit 0: all passed; 1: a check failed; 77: no container engine can be started here (``--probe``
only checks that). Figures are printed as ``figure: ...`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: base image tar, Compose plugin and the engine's data root (``SMARTNET_CLUSTER_CACHE``)
CACHE = pathlib.Path(os.environ.get("SMARTNET_CLUSTER_CACHE") or ROOT / ".cluster").resolve()
BASE_IMAGE = "smartnet-base:{release}"
PROJECT_IMAGE = "smartnet-cosim:cluster-test"
PROJECT = "smartnet-cluster-test"
#: the bound of issue 14 from a death to the end of the federation [s]
MAX_STOP_S = 10.0
#: Compose's first release with ``up --abort-on-container-failure``
MIN_COMPOSE = (2, 27)
EXIT_NO_ENGINE = 77
BASE_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"


class NoEngineError(RuntimeError):
    """No container engine can be started on this machine (the reason in the message)."""


class CheckFailedError(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[test-cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def figure(msg: str) -> None:
    print(f"figure: {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


# --- 1. packages ---------------------------------------------------------------------------


def ensure_debian_packages() -> None:
    missing = [
        pkg
        for binary, pkg in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"))
        if shutil.which(binary) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise NoEngineError(f"{' and '.join(missing)} missing and not root to apt-get install them")
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    # policy-rc.d or not: the system's own docker service is never used here
    run(["apt-get", "install", "-y", "-q", *missing], env=env, stdout=subprocess.DEVNULL)


def _compose_version(env: dict[str, str]) -> tuple[int, ...] | None:
    proc = subprocess.run(
        ["docker", "compose", "version", "--short"], env=env, capture_output=True, text=True
    )
    m = re.match(r"v?(\d+)\.(\d+)", proc.stdout.strip())
    return tuple(int(x) for x in m.groups()) if proc.returncode == 0 and m else None


def ensure_compose(env: dict[str, str]) -> dict[str, str]:
    """The environment under which ``docker compose`` has ``--abort-on-container-failure``."""
    version = _compose_version(env)
    if version and version >= MIN_COMPOSE:
        return env
    config = CACHE / "docker-config"
    plugin = config / "cli-plugins" / "docker-compose"
    env = {**env, "DOCKER_CONFIG": str(config)}
    if not plugin.exists():
        log("compose >= 2.27 missing: fetching Debian unstable's docker-compose with apt-get")
        apt = CACHE / "apt-unstable"
        (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "sources.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {_mirror()[0]} "
            "sid main\n"
        )
        opts = [
            "-o",
            f"Dir::Etc::SourceList={apt / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/nonexistent",
            "-o",
            f"Dir::State::Lists={apt / 'lists'}",
        ]
        run(["apt-get", "-q", *opts, "update"], stdout=subprocess.DEVNULL)
        for old in apt.glob("docker-compose_*.deb"):
            old.unlink()
        run(
            ["apt-get", "-q", *opts, "download", "docker-compose"],
            cwd=apt,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deb = next(apt.glob("docker-compose_*.deb"))
        with tempfile.TemporaryDirectory() as tmp:
            run(["dpkg", "-x", str(deb), tmp])
            plugin.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(
                pathlib.Path(tmp) / "usr/libexec/docker/cli-plugins/docker-compose", plugin
            )
    version = _compose_version(env)
    if not version or version < MIN_COMPOSE:
        raise CheckFailedError(f"docker compose {version} has no --abort-on-container-failure")
    return env


def _mirror() -> tuple[str, str]:
    """(mirror URL, suite) of this machine's Debian apt sources."""
    release = _release()
    texts = [p.read_text() for p in [pathlib.Path("/etc/apt/sources.list")] if p.exists()]
    texts += [p.read_text() for p in sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*"))]
    for text in texts:
        for block in text.split("\n\n"):  # deb822
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and release in suites.group(1).split():
                return uris.group(1), release
        for line in text.splitlines():  # one-line form
            m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
            if m and m.group(2) == release:
                return m.group(1), release
    raise NoEngineError(f"no Debian mirror for {release} in /etc/apt/sources.list*")


def _release() -> str:
    text = pathlib.Path("/etc/os-release").read_text()
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.M)
    if not m or "ID=debian" not in text:
        raise NoEngineError("not a Debian machine (/etc/os-release)")
    return m.group(1)


# --- 2. the private engine -----------------------------------------------------------------


class Engine:
    """Debian's dockerd with private paths; ``env``: a client environment that reaches it."""

    def __init__(self, tmp: pathlib.Path, storage_driver: str | None = None):
        self.tmp = tmp
        self.sock = tmp / "docker.sock"
        self.pidfile = tmp / "dockerd.pid"
        self.data_root = CACHE / (
            "engine" if storage_driver is None else f"engine-{storage_driver}"
        )
        self.log_path = CACHE / "dockerd.log"
        self.storage_driver = storage_driver
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self.env.pop("DOCKER_CONTEXT", None)

    def start(self, timeout_s: float = 60.0) -> None:
        if shutil.which("dockerd") is None:
            raise NoEngineError("no dockerd binary")
        self.data_root.mkdir(parents=True, exist_ok=True)
        cmd = [
            "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.tmp / 'exec'}",
            f"--pidfile={self.pidfile}",
            f"--host=unix://{self.sock}",
            "--iptables=false",
        ]
        if self.storage_driver:
            cmd.append(f"--storage-driver={self.storage_driver}")
        self.log_file = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NoEngineError(f"dockerd exited {self.proc.returncode}: {self._tail()}")
            ok = subprocess.run(["docker", "info"], env=self.env, capture_output=True)
            if ok.returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        raise NoEngineError(f"dockerd did not answer within {timeout_s:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "level=error" in ln or "level=fatal" in ln]
        return " | ".join((errors or lines)[-3:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log_file.close()
        # dockerd leaves its network namespace mounts in the exec root (netns/default)
        mounts = [ln.split()[1] for ln in pathlib.Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.tmp))), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)

    def docker(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, **kw)


def start_engine(tmp: pathlib.Path) -> Engine:
    """overlay2 first; vfs (slow, but needs nothing of the kernel) if that fails."""
    first = Engine(tmp)
    try:
        first.start()
        return first
    except NoEngineError as exc:
        log(f"dockerd with its default storage driver: {exc}; trying --storage-driver=vfs")
    second = Engine(tmp, storage_driver="vfs")
    second.start()
    return second


# --- 3. and 4. images ----------------------------------------------------------------------


def _pip_conf() -> str:
    """The machine's pip settings a build can use: its CA bundle, http(s) indexes only."""
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    for key in ("index-url", "extra-index-url"):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", f"global.{key}"],
            capture_output=True,
            text=True,
        )
        env_value = os.environ.get(f"PIP_{key.upper().replace('-', '_')}", "")
        urls = [u for u in (proc.stdout + " " + env_value).split() if u.startswith("http")]
        if urls:
            lines.append(f"{key} = {' '.join(urls)}")
    return "\n".join(lines) + "\n"


def _ca_bundle() -> pathlib.Path:
    for cand in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if cand and pathlib.Path(cand).is_file():
            return pathlib.Path(cand)
    raise CheckFailedError("no CA bundle on this machine for pip inside the build")


def ensure_base_image(engine: Engine) -> str:
    release = _release()
    tag = BASE_IMAGE.format(release=release)
    if engine.docker("image", "inspect", tag, capture_output=True, check=False).returncode == 0:
        log(f"base image {tag}: in the engine's cache")
        return tag
    tar = CACHE / f"base-{release}.tar"
    t0 = time.monotonic()
    if not tar.exists():
        mirror, suite = _mirror()
        log(f"debootstrap {suite} from {mirror} (a few minutes)")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            rootfs = pathlib.Path(tmp) / "rootfs"
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    suite,
                    str(rootfs),
                    mirror,
                ],
                stdout=subprocess.DEVNULL,
            )
            # pip inside the build: the machine's CA bundle and index settings; the image is
            # a container's own Python, so Debian's externally-managed marker goes
            shutil.copy2(_ca_bundle(), rootfs / "etc/ssl/certs/ca-certificates.crt")
            (rootfs / "etc/pip.conf").write_text(_pip_conf())
            for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            run(["chroot", str(rootfs), "apt-get", "clean"])
            shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
            partial = tar.with_suffix(".tar.partial")
            run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
            partial.rename(tar)
    engine.docker(
        "import",
        "-c",
        "ENV LANG=C.UTF-8",
        "-c",
        'CMD ["python3"]',
        str(tar),
        tag,
        stdout=subprocess.DEVNULL,
    )
    figure(
        f"base image {tag} built in {time.monotonic() - t0:.1f} s "
        f"({tar.stat().st_size / 1e6:.0f} MB tar)"
    )
    return tag


def build_project_image(engine: Engine, base: str) -> None:
    t0 = time.monotonic()
    run(
        [
            "make",
            "-s",
            "image",
            f"IMAGE={PROJECT_IMAGE}",
            f"BASE={base}",
            "DOCKER_BUILD_FLAGS=--network=host --quiet",
        ],
        cwd=ROOT,
        env={**engine.env, "DOCKER_BUILDKIT": "0"},
        stdout=subprocess.DEVNULL,
    )
    figure(f"project image {PROJECT_IMAGE} (make image) in {time.monotonic() - t0:.1f} s")


# --- 5. and 6. runs ------------------------------------------------------------------------


def smartnet(*args: str, netns: str | None = None, **kw) -> subprocess.CompletedProcess:
    cmd = [str(ROOT / ".venv/bin/smartnet"), *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return run(cmd, cwd=ROOT, **kw)


def compose(env: dict[str, str], folder: pathlib.Path, *args: str, **kw):
    return run(["docker", "compose", "-p", PROJECT, *args], cwd=folder, env=env, **kw)


def _read_steps(path: pathlib.Path):
    sys.path.insert(0, str(ROOT))
    from federation.results import read_results

    return read_results(path)


def compose_equals_local(env: dict[str, str], tmp: pathlib.Path, netns: str | None) -> None:
    folder = tmp / "compose_tiny"
    built = smartnet(
        "build",
        "--scenario",
        "tiny",
        "--scheme",
        "A",
        "--out",
        str(folder),
        "--image",
        PROJECT_IMAGE,
        capture_output=True,
        text=True,
    )
    log(built.stdout.strip().splitlines()[0])
    t0 = time.monotonic()
    up = compose(
        env,
        folder,
        "up",
        "--abort-on-container-failure",
        "--no-color",
        check=False,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    (CACHE / "compose_tiny.log").write_text(up.stdout + up.stderr)
    compose(env, folder, "down", "--timeout", "5", capture_output=True)
    if up.returncode != 0:
        raise CheckFailedError(
            f"compose up of tiny exited {up.returncode} ({CACHE / 'compose_tiny.log'})"
        )
    figure(f"compose up of tiny (13 containers): {wall:.1f} s wall, exit 0")
    local_dir = tmp / "local_tiny"
    t0 = time.monotonic()
    smartnet(
        "run",
        "--scenario",
        "tiny",
        "--scheme",
        "A",
        "--run-dir",
        str(local_dir),
        "--no-progress",
        netns=netns,
        stdout=subprocess.DEVNULL,
    )
    figure(f"local smartnet run of tiny: {time.monotonic() - t0:.1f} s wall")
    kc = json.loads((folder / "results/tiny_A.kpi.json").read_text())
    kl = json.loads((local_dir / "results/tiny_A.kpi.json").read_text())
    if kc != kl:
        diff = sorted(k for k in set(kc) | set(kl) if kc.get(k) != kl.get(k))
        raise CheckFailedError(f"compose and local KPIs differ in {diff}")
    import numpy as np

    rc, rl = _read_steps(folder / "results/tiny_A.h5"), _read_steps(local_dir / "results/tiny_A.h5")
    n = 0
    for group in ("steps", "sessions"):
        if rc[group].keys() != rl[group].keys():
            raise CheckFailedError(f"compose and local {group} have different series")
        for key in rc[group]:
            np.testing.assert_array_equal(rc[group][key], rl[group][key], err_msg=key)
            n += 1
    np.testing.assert_array_equal(rc["awards"], rl["awards"])
    figure(
        f"KPIs of compose and local run identical ({len(kc)} KPIs, {n} series and the "
        "awards equal to the bit)"
    )


def _sessions(path: pathlib.Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f["sessions/t_s"].shape[0])
    except (OSError, KeyError):
        return 0


def killed_dso_ends_the_run(env: dict[str, str], tmp: pathlib.Path) -> None:
    text = (ROOT / "scenarios/tiny.toml").read_text()
    assert "duration_h = 3\n" in text
    src = tmp / "tiny_12h"
    src.mkdir()
    (src / "tiny.toml").write_text(text.replace("duration_h = 3\n", "duration_h = 12\n"))
    folder = tmp / "compose_fault"
    smartnet(
        "build",
        "--scenario",
        str(src / "tiny.toml"),
        "--scheme",
        "A",
        "--out",
        str(folder),
        "--image",
        PROJECT_IMAGE,
        stdout=subprocess.DEVNULL,
    )
    results = folder / "results/tiny_A.h5"
    log_path = CACHE / "compose_fault.log"
    with log_path.open("w") as out:
        up = subprocess.Popen(
            [
                "docker",
                "compose",
                "-p",
                PROJECT,
                "up",
                "--abort-on-container-failure",
                "--no-color",
            ],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while _sessions(results) < 1:
                if up.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailedError(f"the 12 h run never flushed a session ({log_path})")
                time.sleep(0.3)
            time.sleep(1.0)
            victim = f"{PROJECT}-dso-1-1"
            killed_at = time.monotonic()
            run(["docker", "kill", "--signal", "KILL", victim], env=env, stdout=subprocess.DEVNULL)
            try:
                rc = up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise CheckFailedError("compose up still running 60 s after the kill") from None
            stopped_s = time.monotonic() - killed_at
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
    ps = compose(env, folder, "ps", "-a", "--format", "json", capture_output=True, text=True)
    rows = [json.loads(line) for line in ps.stdout.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    codes = {r["Service"]: int(r["ExitCode"]) for r in rows}
    compose(env, folder, "down", "--timeout", "5", capture_output=True)
    text = log_path.read_text()
    survivors = {s: c for s, c in codes.items() if s != "dso-1"}
    # helics_broker 3.6 itself exits 0 once a federation that ended in error is gone
    federates = {s: c for s, c in survivors.items() if s != "broker"}
    figure(
        f"compose, dso-1 container SIGKILLed: up ended after {stopped_s:.1f} s, exit {rc}; "
        f"dso-1 {codes.get('dso-1')}; survivors {sorted(set(survivors.values()))}"
    )
    figure(f"compose survivors' exit codes: {json.dumps(survivors, sort_keys=True)}")
    if stopped_s >= MAX_STOP_S:
        raise CheckFailedError(
            f"the run took {stopped_s:.1f} s to end after the kill (> {MAX_STOP_S})"
        )
    if rc == 0:
        raise CheckFailedError("compose up returned 0 after a container was killed")
    if not re.search(r"dso-1-1 exited with code 137", text):
        raise CheckFailedError(f"the log does not name the killed dso-1 ({log_path})")
    if codes.get("dso-1") != 137 or not federates or 0 in federates.values():
        raise CheckFailedError(f"exit codes: {codes}")
    if _sessions(results) < 1:
        raise CheckFailedError("the results file lost the flushed session")


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--probe",
        action="store_true",
        help="only check that a container engine starts here (exit 0 or 77)",
    )
    parser.add_argument(
        "--netns", default=None, help="network namespace of the local HELICS run (default: none)"
    )
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    CACHE.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        tmp = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sncl.")))
        try:
            if os.geteuid() != 0:
                raise NoEngineError("dockerd needs root")
            ensure_debian_packages()
            engine = start_engine(tmp)
        except (NoEngineError, subprocess.CalledProcessError) as exc:
            print(f"test-cluster: skipped: no container engine can be started here ({exc})")
            return EXIT_NO_ENGINE
        stack.callback(engine.stop)
        log(f"dockerd {engine.storage_driver or 'overlay2'} up at {engine.sock}")
        if args.probe:
            return 0
        try:
            env = ensure_compose(engine.env)
            base = ensure_base_image(engine)
            build_project_image(engine, base)
            compose_equals_local(env, tmp, args.netns)
            killed_dso_ends_the_run(env, tmp)
        except (CheckFailedError, subprocess.CalledProcessError) as exc:
            print(f"test-cluster: FAILED: {exc}", file=sys.stderr)
            return 1
    figure(f"test-cluster total {time.monotonic() - t_start:.1f} s")
    print("test-cluster: passed (compose run equals the local run; a killed DSO ends the run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
