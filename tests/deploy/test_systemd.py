"""The systemd unit in deploy/systemd/: checked by systemd's own tools, and its sandbox tried for real.

* ``systemd-analyze verify`` on a copy whose ``/opt/genretag`` points at this environment's real
  ``genretag`` (verify insists that every Exec binary exists), with and without the GPU drop-in;
  any warning fails the test, because verify exits 0 on unknown keys.
* ``systemd-analyze security --offline=yes --threshold=49``: exposure above "OK" (4.9) fails, and the
  score may not be worse than the one recorded in the README.
* ExecStart's flags parse with our CLI, and the shipped config passes ``check-config`` at the path the
  unit uses; ``systemd-sysusers`` makes the unit's User= from deploy/systemd/genretag.sysusers.
* The parts of the sandbox a wrong guess would break at run time, applied with the kernel mechanisms
  systemd uses: ``RestrictAddressFamilies=`` (a seccomp filter on socket(), EAFNOSUPPORT) and
  ``SystemCallFilter=`` (the unit's groups expanded by ``systemd-analyze syscall-filter``, everything
  else EPERM) around a daemon with the default model, url:, zmq:, metrics, sd_notify and a SIGHUP
  reload; and ``MemoryDenyWriteExecute=`` as prctl(PR_SET_MDWE) around inference with the default
  model.  The sandbox is installed by a ``sitecustomize.py`` (the source of :func:`_sandbox`) that the
  child interpreter runs before any genretag code, and it is inherited by the ffmpeg child.
"""

from __future__ import annotations

import ctypes
import functools
import http.server
import inspect
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.daemon import SR, Daemon, Producer, clip, free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "genretag.service"
NVIDIA_DROPIN = REPO / "deploy" / "systemd" / "nvidia.conf"
SYSUSERS = REPO / "deploy" / "systemd" / "genretag.sysusers"
CONFIG = REPO / "deploy" / "genretag.toml"
README = REPO / "README.md"
DEMO = REPO / "cli" / "demo" / "demo-electronic.flac"
INSTALL_PREFIX = "/opt/genretag/"
OK_THRESHOLD = 49  # --threshold is exposure x 10; "OK" ends at 4.9, "MEDIUM" starts at 5.0
ACCEPTABLE_LEVELS = {"PERFECT", "SAFE", "OK"}
PR_SET_MDWE, PR_GET_MDWE = 65, 66


def systemd_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a systemd tool; a missing one fails (never skips): the unit would go unchecked."""
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(
            f"{name} is not installed (Debian: apt-get install systemd); "
            "the systemd unit cannot be checked without it"
        )
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return systemd_tool("systemd-analyze", *args)


def unit_values(key: str, path: Path = UNIT) -> list[str]:
    """Every value of ``key=`` in a unit file, in order (comments and other keys left out)."""
    return [
        line.split("=", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith(f"{key}=")
    ]


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ``/opt/genretag/`` moved under tmp_path, where ``bin/genretag`` is this
    environment's real entry point: what verify checks exists, as it will on a box."""
    prefix = tmp_path / "opt" / "genretag"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "genretag").symlink_to(Path(sys.executable).with_name("genretag"))
    text = UNIT.read_text()
    assert f"ExecStart={INSTALL_PREFIX}bin/genretag " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALL_PREFIX, f"{prefix}/"))
    return copy


def install_nvidia_dropin(unit: Path) -> None:
    """The GPU drop-in beside ``unit``, with its commented settings switched on."""
    dropin = unit.with_name(unit.name + ".d") / NVIDIA_DROPIN.name
    dropin.parent.mkdir()
    dropin.write_text(re.sub(r"^#(?=[A-Z][A-Za-z]+=)", "", NVIDIA_DROPIN.read_text(), flags=re.M))


def test_nvidia_dropin_as_shipped_changes_nothing() -> None:
    lines = [line for line in NVIDIA_DROPIN.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == ["[Service]"]
    assert {"DeviceAllow", "Environment"} <= set(
        re.findall(r"^#([A-Z][A-Za-z]+)=", NVIDIA_DROPIN.read_text(), re.M)
    )


@pytest.mark.parametrize("gpu", [False, True], ids=["unit", "unit+nvidia"])
def test_systemd_analyze_verify(unit_copy: Path, gpu: bool) -> None:
    if gpu:
        install_nvidia_dropin(unit_copy)
    result = systemd_analyze("verify", str(unit_copy))
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), result.stdout + result.stderr


def test_verify_fails_when_the_binary_is_missing(unit_copy: Path) -> None:
    """The verify test above means something: without the binary behind ExecStart, verify fails."""
    (unit_copy.parent / "opt" / "genretag" / "bin" / "genretag").unlink()
    result = systemd_analyze("verify", str(unit_copy))
    assert result.returncode != 0 and "is not executable" in result.stderr, result.stderr


def recorded_score() -> float:
    found = re.search(r"exposure level \*\*(\d+\.\d) OK\*\*", README.read_text())
    assert found, "README.md should record the unit's `systemd-analyze security` score as **N.N OK**"
    return float(found.group(1))


@pytest.mark.parametrize("gpu", [False, True], ids=["unit", "unit+nvidia"])
def test_security_exposure_at_most_ok(unit_copy: Path, gpu: bool) -> None:
    if gpu:
        install_nvidia_dropin(unit_copy)
    result = systemd_analyze(
        "security", "--offline=yes", f"--threshold={OK_THRESHOLD}", "--no-pager", str(unit_copy)
    )
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for genretag\.service: (\d+\.\d) (\w+)", output)
    assert found, output
    score, level = float(found.group(1)), found.group(2)
    assert result.returncode == 0, f"exposure {score} {level} is above OK:\n{output}"
    assert level in ACCEPTABLE_LEVELS and score <= OK_THRESHOLD / 10
    assert score <= recorded_score(), f"exposure rose to {score}: a hardening setting was lost?\n{output}"
    if gpu:  # the drop-in was loaded, not silently ignored
        assert re.search(r"DeviceAllow=.*char-nvidia:rw.*char-alsa:rw", output), output


def test_unit_runs_the_daemon_the_way_it_expects(tmp_path: Path) -> None:
    """ExecStart parses with our CLI, the config it names is where ConfigurationDirectory= is and the
    shipped example passes check-config there; the life cycle settings match what the daemon speaks."""
    from genretag.cli.main import cli

    (exec_start,) = unit_values("ExecStart")
    binary, command, *args = shlex.split(exec_start)
    assert binary == f"{INSTALL_PREFIX}bin/genretag"
    config = Path(args[args.index("--config") + 1])
    (config_dir,) = unit_values("ConfigurationDirectory")
    assert config.parent == Path("/etc") / config_dir
    installed = tmp_path / config.relative_to("/")
    installed.parent.mkdir(parents=True)
    shutil.copy(CONFIG, installed)
    args[args.index("--config") + 1] = str(installed)
    ctx = cli.commands[command].make_context(command, args)  # raises on any flag serve does not know
    assert ctx.params["config_path"] == installed
    check = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "check-config", str(installed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and check.stdout.startswith(f"{installed}: OK"), check.stdout + check.stderr

    (state_dir,) = unit_values("StateDirectory")
    assert f"/var/lib/{state_dir}/models/" in CONFIG.read_text()  # the model path the example suggests
    assert unit_values("Type") == ["notify"] and unit_values("NotifyAccess") == ["main"]
    assert unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values("Restart") == ["on-failure"] and unit_values("WatchdogSec")
    (cache_dir,) = unit_values("CacheDirectory")  # the JIT caches must be where the daemon may write
    for name, value in (env.split("=", 1) for env in unit_values("Environment")):
        if name.endswith(("_DIR", "_HOME", "_PATH")):
            assert Path(value).is_relative_to(Path("/var/cache") / cache_dir), (name, value)


def test_sysusers_creates_the_units_user(tmp_path: Path) -> None:
    """systemd-sysusers, run on an empty root, creates the User=/Group= of the unit: a system account
    without a login shell whose home is the state directory."""
    (tmp_path / "etc").mkdir()
    result = systemd_tool("systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS))
    assert result.returncode == 0, result.stderr
    (user,), (group,), (state_dir,) = unit_values("User"), unit_values("Group"), unit_values("StateDirectory")
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    _, _, uid, gid, _, home, shell = next(line.split(":") for line in passwd if line.startswith(f"{user}:"))
    assert int(uid) < 1000 and home == f"/var/lib/{state_dir}" and shell.endswith("nologin")
    assert f"{group}:x:{gid}:" in (tmp_path / "etc" / "group").read_text()


def _sandbox() -> None:
    """Written out as the sandboxed interpreter's ``sitecustomize.py``; self-contained for that reason.

    GENRETAG_SANDBOX_MDWE=1: prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), what systemd applies for
    MemoryDenyWriteExecute=yes.  GENRETAG_SANDBOX_FAMILIES="AF_UNIX ...": socket() of any other family
    fails with EAFNOSUPPORT, as under RestrictAddressFamilies=.  GENRETAG_SANDBOX_SYSCALLS="read ...":
    any other system call fails with EPERM, as under SystemCallFilter= with SystemCallErrorNumber=EPERM.
    Each seccomp filter is loaded on its own, as systemd does; all of it survives fork and exec.
    """
    import ctypes
    import errno
    import os
    import socket

    if os.environ.get("GENRETAG_SANDBOX_MDWE"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(65, 1, 0, 0, 0) != 0 or libc.prctl(66, 0, 0, 0, 0) != 1:
            raise SystemExit(f"sandbox: PR_SET_MDWE failed: {os.strerror(ctypes.get_errno())}")

    class ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
        _fields_ = [
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("datum_a", ctypes.c_uint64),
            ("datum_b", ctypes.c_uint64),
        ]

    seccomp = ctypes.CDLL("libseccomp.so.2")
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ArgCmp),
    ]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    allow = 0x7FFF0000  # SCMP_ACT_ALLOW; SCMP_ACT_ERRNO(e) is 0x00050000 | e

    def load(default: int, rules: list[tuple[int, int, ArgCmp | None]]) -> None:
        ctx = seccomp.seccomp_init(default)
        for action, nr, cmp in rules:
            if (
                seccomp.seccomp_rule_add_array(
                    ctx, action, nr, int(cmp is not None), ctypes.byref(cmp) if cmp is not None else None
                )
                != 0
            ):
                raise SystemExit(f"sandbox: seccomp rule for system call {nr} refused")
        if seccomp.seccomp_load(ctx) != 0:
            raise SystemExit("sandbox: seccomp_load failed")

    if os.environ.get("GENRETAG_SANDBOX_FAMILIES"):
        allowed = {int(getattr(socket, name)) for name in os.environ["GENRETAG_SANDBOX_FAMILIES"].split()}
        equal, at_least, af_max = 4, 5, 64  # SCMP_CMP_EQ, SCMP_CMP_GE; above every AF_* Linux defines
        refuse, nr = 0x00050000 | errno.EAFNOSUPPORT, seccomp.seccomp_syscall_resolve_name(b"socket")
        compares = [ArgCmp(0, equal, family, 0) for family in range(af_max) if family not in allowed]
        load(allow, [(refuse, nr, cmp) for cmp in [*compares, ArgCmp(0, at_least, af_max, 0)]])
    if os.environ.get("GENRETAG_SANDBOX_SYSCALLS"):  # last: seccomp() itself is outside the allow list
        numbers = {
            seccomp.seccomp_syscall_resolve_name(name.encode())
            for name in os.environ["GENRETAG_SANDBOX_SYSCALLS"].split()
        }
        load(0x00050000 | errno.EPERM, [(allow, nr, None) for nr in sorted(numbers - {-1})])  # -1: unknown


def sandbox_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Environment for a child Python whose sandbox is ``settings`` (GENRETAG_SANDBOX_* without prefix)."""
    site = tmp_path / "sandbox-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(inspect.getsource(_sandbox) + "\n\n_sandbox()\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **{f"GENRETAG_SANDBOX_{k}": v for k, v in settings.items()}}


def unit_families() -> str:
    (families,) = unit_values("RestrictAddressFamilies")
    return families


def syscall_names(item: str) -> set[str]:
    """A system call name, or every call of an @group (nested groups expanded), by systemd-analyze."""
    if not item.startswith("@"):
        return {item}
    result = systemd_analyze("syscall-filter", item)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()[1:]]
    return set().union(*(syscall_names(line) for line in lines if line and not line.startswith("#")))


def unit_syscalls() -> str:
    """The system calls the unit's SystemCallFilter= lines allow (an allow list, then ~ deny lists)."""
    assert unit_values("SystemCallErrorNumber") == ["EPERM"]  # what the sandbox answers refused calls with
    allowed: set[str] = set()
    for value in unit_values("SystemCallFilter"):
        names = set().union(*(syscall_names(item) for item in value.lstrip("~").split()))
        allowed = allowed - names if value.startswith("~") else allowed | names
    assert len(allowed) > 100, allowed
    return " ".join(sorted(allowed))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        pass


@pytest.fixture
def radio(tmp_path: Path) -> Iterator[str]:
    """A URL on a loopback HTTP server serving 20 s of the synthetic "electronic" genre as WAV."""
    import soundfile

    root = tmp_path / "www"
    root.mkdir()
    soundfile.write(root / "live.wav", clip("electronic", 20.0, seed=7), SR)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.wav"
    server.shutdown()
    server.server_close()


def has_windows(daemon: Daemon, stream: str) -> bool:
    return daemon.metric("genretag_windows_processed_total", stream=stream) > 0


@pytest.mark.slow
def test_daemon_serves_inside_the_units_seccomp_filters(radio: str, tmp_path: Path) -> None:
    """The default model (TensorFlow) with url: (through ffmpeg), zmq: (windowed in an ingest worker
    process), the event PUB socket, /metrics, sd_notify and a SIGHUP reload, all under the unit's
    RestrictAddressFamilies= and SystemCallFilter=."""
    zmq_port = free_port()
    config = tmp_path / "genretag.toml"
    config.write_text(
        f'[[source]]\nspec = "url:{radio}"\nname = "radio"\n\n'
        f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{zmq_port}?workers=1"\n'
    )
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(30)
    env = {
        **sandbox_env(tmp_path, FAMILIES=unit_families(), SYSCALLS=unit_syscalls()),
        "NOTIFY_SOCKET": str(notify_path),
    }
    producer = Producer(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with Daemon(
            "--config",
            config,
            "--publish",
            "tcp://127.0.0.1:*",
            "--metrics",
            "127.0.0.1:0",
            env=env,
            ready_timeout=180,
        ) as daemon:
            assert "READY=1" in notify.recv(4096).decode()
            producer.send("playout", clip("classical", 4.0))
            for stream in ("radio", "playout"):
                daemon.wait_for(functools.partial(has_windows, daemon, stream), 60, f"windows of {stream}")
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_for(
                lambda: daemon.metric("genretag_model_reloads_total", result="ok") == 1, 60, "the reload"
            )
            assert daemon.stop() == 0, "\n".join(daemon.log[-20:])
    finally:
        producer.close()
        notify.close()
    refusals = ("Address family not supported", "Operation not permitted")
    assert not [line for line in daemon.log if any(refusal in line for refusal in refusals)], daemon.log


def test_zmq_needs_netlink(tmp_path: Path) -> None:
    """Why AF_NETLINK is in the list: libzmq enumerates interfaces when it binds and aborts without it."""
    without = " ".join(f for f in unit_families().split() if f != "AF_NETLINK")
    assert without != unit_families()

    def bind(families: str) -> subprocess.CompletedProcess[str]:
        code = "import zmq; zmq.Context().socket(zmq.PUB).bind('tcp://127.0.0.1:*'); print('bound')"
        return subprocess.run(
            [sys.executable, "-c", code],
            env=sandbox_env(tmp_path, FAMILIES=families),
            capture_output=True,
            text=True,
            timeout=60,
        )

    allowed, refused = bind(unit_families()), bind(without)
    assert (allowed.returncode, allowed.stdout) == (0, "bound\n"), allowed.stderr
    assert refused.returncode == -signal.SIGABRT and "ip_resolver" in refused.stderr, refused.stderr


def _kernel_has_mdwe() -> bool:
    return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0)


@pytest.mark.slow
@pytest.mark.skipif(
    not _kernel_has_mdwe(),
    reason="this kernel lacks prctl(PR_SET_MDWE) (Linux >= 6.3), "
    "the mechanism behind MemoryDenyWriteExecute=",
)
def test_memory_deny_write_execute_matches_the_default_model(tmp_path: Path) -> None:
    """The unit turns MemoryDenyWriteExecute= on exactly when the default model works under it."""
    command = [sys.executable, "-m", "genretag.cli.main", "classify", "--json", str(DEMO)]
    result = subprocess.run(
        command, env=sandbox_env(tmp_path, MDWE="1"), capture_output=True, text=True, timeout=600
    )
    (setting,) = unit_values("MemoryDenyWriteExecute")
    if result.returncode == 0:
        assert '"label"' in result.stdout
        assert setting == "yes", "inference works under MDWE now: set MemoryDenyWriteExecute=yes in the unit"
    else:
        # OpenVINO's CPU plugin generates its kernels when it loads a model and cannot make them executable
        # (its message varies with the kernel that fails first: "can't protect", "label is redefined"), so
        # the model does not load; the same command without MDWE does, so MDWE is the cause.
        assert "OpenVINO cannot load it" in result.stderr, result.stderr
        control = subprocess.run(
            command, env=sandbox_env(tmp_path), capture_output=True, text=True, timeout=600
        )
        assert control.returncode == 0 and '"label"' in control.stdout, control.stderr
        assert setting == "no"


TEMPLATE = REPO / "deploy" / "systemd" / "genretag@.service"
SHARD_LINE = "Environment=GENRETAG_SHARD_INDEX=%i"


def test_the_fleet_template_is_the_unit_with_its_instance_as_shard_index() -> None:
    """genretag@N (README, "Scaling out") cannot drift from the hardened unit: the same settings, but for
    its Description and the shard index that `serve --shard-index` reads from the environment."""

    def settings(path: Path) -> list[str]:
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        return [line for line in lines if not line.startswith("Description=")]

    template = settings(TEMPLATE)
    assert template.count(SHARD_LINE) == 1
    assert [line for line in template if line != SHARD_LINE] == settings(UNIT)
    assert unit_values("Description", TEMPLATE)[0].endswith("shard %i of a fleet")
    from genretag.cli.main import cli

    shard_index = next(p for p in cli.commands["serve"].params if p.name == "shard_index")
    assert shard_index.envvar == SHARD_LINE.split("=")[1]


def test_a_fleet_instance_verifies_and_is_as_safe_as_the_unit(tmp_path: Path) -> None:
    prefix = tmp_path / "opt" / "genretag"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "genretag").symlink_to(Path(sys.executable).with_name("genretag"))
    template = tmp_path / TEMPLATE.name
    template.write_text(TEMPLATE.read_text().replace(INSTALL_PREFIX, f"{prefix}/"))
    instance = tmp_path / "genretag@2.service"
    instance.symlink_to(template.name)
    result = systemd_analyze("verify", str(instance))
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), result.stdout + result.stderr
    result = systemd_analyze(
        "security", "--offline=yes", f"--threshold={OK_THRESHOLD}", "--no-pager", str(instance)
    )
    found = re.search(
        r"Overall exposure level for genretag@2\.service: (\d+\.\d) (\w+)", result.stdout + result.stderr
    )
    assert found and result.returncode == 0, result.stdout + result.stderr
    assert float(found.group(1)) <= recorded_score()
