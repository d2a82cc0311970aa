"""jhfs run as mount(8) runs it: mount -t fuse.jhfs, an fstab line (root's and a
user's), the helper's calling convention directly, its errors, and README's
systemd user service.

mount(8) empties PATH, so mount.fuse3's shell finds `jhfs` on its default path
(/usr/local/bin, where scripts/install links it). The tests do not touch the
system's: each runs mount(8) in a mount namespace of its own, where a
directory holding a `jhfs` that runs this checkout is bound over
/usr/local/bin (and a test's fstab over /etc/fstab). Mounts made there exist
only there; teardown unmounts them and ends the namespace's processes.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import jhfs_env, module_emulator

import jhfs
from jhfs.nodes.tree import XATTR_PID

emulator = module_emulator()
NOBODY = 65534  # a normal user's uid and gid, for the tests run as root
CHECKOUT = Path(jhfs.__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="mount(8) with a namespace needs root")


def jhfs_command(bin_dir: Path) -> Path:
    """A `jhfs` in bin_dir that runs this checkout's jhfs, as the installed one would."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    command = bin_dir / "jhfs"
    command.write_text(
        f"#!/bin/sh\nexec env PYTHONPATH={shlex.quote(str(CHECKOUT))} "
        f'{shlex.quote(sys.executable)} -m jhfs "$@"\n'
    )
    command.chmod(0o755)
    return command


def open_to_everyone(paths: list[Path], stash: Path) -> list[str]:
    """Shell commands that, in a mount namespace, let every user reach `paths`: each
    directory on the way that only root may enter (/root, when this Python is
    pyenv's; a checkout under `mktemp -d`) becomes an open tmpfs holding just the
    next directories on the ways (top down, so a closed directory further on is
    reached through the binds already made)."""
    children: dict[Path, set[str]] = {}
    for path in paths:
        for closed in reversed(path.parents):
            if closed != Path("/") and not closed.stat().st_mode & 0o001:
                children.setdefault(closed, set()).add(path.relative_to(closed).parts[0])
    commands = []
    for number, closed in enumerate(sorted(children, key=lambda p: len(p.parts))):
        place = stash / str(number)
        place.mkdir(parents=True)
        q_closed, q_place = shlex.quote(str(closed)), shlex.quote(str(place))
        commands += [f"mount --bind {q_closed} {q_place}",
                     f"mount -t tmpfs -o mode=755 tmpfs {q_closed}"]  # fmt: skip
        for child in sorted(children[closed]):
            q_child = shlex.quote(child)
            commands += [f"mkdir {q_closed}/{q_child}",
                         f"mount --bind {q_place}/{q_child} {q_closed}/{q_child}"]  # fmt: skip
    return commands


class Namespace:
    """A private mount namespace, held open by a sleeping process, to run commands in."""

    def __init__(self, binds: dict[Path, str], setup: list[str]) -> None:
        script = " && ".join(
            [f"mount --bind {shlex.quote(str(a))} {b}" for a, b in binds.items()] + setup
        )
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"{script} && echo ready && exec sleep 600"],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline().strip() == "ready"

    def run(
        self, *command: str, env: dict[str, str] | None = None, user: bool = False
    ) -> subprocess.CompletedProcess[str]:
        as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return subprocess.run(
            ["nsenter", "-t", str(self.holder.pid), "-m", "--", *(as_user if user else []),
             *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip

    def mounted(self, path: Path) -> bool:
        with open(f"/proc/{self.holder.pid}/mountinfo") as table:
            return any(line.split()[4] == str(path) for line in table)

    def server_pid(self, path: Path, user: bool = False) -> int:
        """The jhfs process serving the mount at `path` (it names itself)."""
        result = self.run("getfattr", "--only-values", "-n", XATTR_PID, str(path), user=user)
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    def close(self, *mountpoints: Path) -> None:
        for path in mountpoints:
            if self.mounted(path):
                self.run("umount", "-l", str(path))
        self.holder.kill()
        self.holder.wait()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A child of ours that ended stays a zombie until reaped; jhfs is no child of ours.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory a normal user can reach (the user mount's mount point is in it)."""
    path = Path(tempfile.mkdtemp(prefix="jhfs-fstab-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def namespace(workdir: Path) -> Iterator[Namespace]:
    jhfs_command(workdir / "bin")
    (workdir / "fstab").write_text("")
    binds = {workdir / "bin": "/usr/local/bin", workdir / "fstab": "/etc/fstab"}
    if not os.stat("/dev/fuse").st_mode & 0o006:
        # Some containers keep /dev/fuse to root; a system lets every user open it
        # (fusermount3 checks who may mount what).
        device = workdir / "fuse"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.stat("/dev/fuse").st_rdev)
        device.chmod(0o666)
        binds[device] = "/dev/fuse"
    ns = Namespace(
        binds,
        # A normal user's mount runs jhfs as that user.
        open_to_everyone(
            [Path(sys.executable), Path(sys.executable).resolve(), CHECKOUT], workdir / "stash"
        ),
    )
    try:
        yield ns
    finally:
        ns.close(workdir / "mnt", workdir / "user-mnt")


def mount_env(emulator: Emulator) -> dict[str, str]:
    env = jhfs_env(emulator)
    del env["JULIAHUB_SERVER"]  # the server comes from the mount's options
    return env


def mounted_and_unmounted(
    ns: Namespace, emulator: Emulator, mountpoint: Path, umount: list[str], user: bool = False
) -> None:
    """The mount at `mountpoint` shows a job's status; `umount` ends it and its process."""
    assert ns.mounted(mountpoint)
    job = emulator.create_finished(status="Completed")
    result = ns.run("cat", f"{mountpoint}/jobs/{job}/status", user=user)
    assert (result.returncode, result.stdout) == (0, "Completed\n"), result.stderr
    pid = ns.server_pid(mountpoint, user=user)
    result = ns.run(*umount, str(mountpoint), user=user)
    assert result.returncode == 0, result.stderr
    assert not ns.mounted(mountpoint)
    wait_for(lambda: gone(pid), what="the jhfs process to exit")


def test_mount_t_fuse_jhfs_and_umount(
    emulator: Emulator, namespace: Namespace, workdir: Path
) -> None:
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    options = f"server={emulator.url},cache_dir={workdir}/cache"
    result = namespace.run("mount", "-t", "fuse.jhfs", "none", str(mountpoint), "-o", options,
                           env=mount_env(emulator))  # fmt: skip
    assert result.returncode == 0, result.stderr
    mounted_and_unmounted(namespace, emulator, mountpoint, ["umount"])


def test_an_fstab_line_with_systemd_and_user_options(
    emulator: Emulator, namespace: Namespace, workdir: Path
) -> None:
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    fstab = workdir / "test-fstab"
    fstab.write_text(
        "# jhfs\n"
        f"none  {mountpoint}  fuse.jhfs  noauto,user,_netdev,x-systemd.automount,"
        f"server={emulator.url},cache_dir={workdir}/cache,download_streams=2  0 0\n"
    )
    result = namespace.run("mount", "-T", str(fstab), str(mountpoint), env=mount_env(emulator))
    assert result.returncode == 0, result.stderr
    mounted_and_unmounted(namespace, emulator, mountpoint, ["fusermount3", "-u"])


def test_a_normal_user_mounts_and_unmounts_an_fstab_user_line(
    emulator: Emulator, namespace: Namespace, workdir: Path
) -> None:
    """`user` in /etc/fstab: nobody runs `mount MNT`; jhfs runs as nobody (the
    mount is nobody's), and nobody's `umount MNT` ends it."""
    mountpoint, cache = workdir / "user-mnt", workdir / "user-cache"
    for path in (mountpoint, cache):
        path.mkdir()
        os.chown(path, NOBODY, NOBODY)
    (workdir / "fstab").write_text(
        f"none {mountpoint} fuse.jhfs noauto,user,_netdev,server={emulator.url},"
        f"cache_dir={cache} 0 0\n"
    )
    result = namespace.run("mount", str(mountpoint), env=mount_env(emulator), user=True)
    assert result.returncode == 0, result.stderr
    pid = namespace.server_pid(mountpoint, user=True)
    assert os.stat(f"/proc/{pid}").st_uid == NOBODY
    mounted_and_unmounted(namespace, emulator, mountpoint, ["umount"], user=True)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("bogus", "unknown mount option 'bogus'"),
        ("token=secret-5e1", "a token is never taken from mount options"),
    ],
)
def test_a_refused_option_is_one_line_and_exit_1(
    emulator: Emulator, namespace: Namespace, workdir: Path, option: str, message: str
) -> None:
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    options = f"server={emulator.url},cache_dir={workdir}/cache,{option}"
    via_mount = namespace.run("mount", "-t", "fuse.jhfs", "none", str(mountpoint), "-o", options,
                              env=mount_env(emulator))  # fmt: skip
    direct = helper("none", str(mountpoint), "-o", options, env=mount_env(emulator))
    for result in (via_mount, direct):
        assert result.returncode == 1
        [line] = result.stderr.splitlines()
        assert line.startswith(f"jhfs: error: {message}")
        assert "secret-5e1" not in line
    assert not namespace.mounted(mountpoint)


def helper(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The `mount.jhfs` command (the console script's function)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from jhfs.mount_helper import main; sys.exit(main())",
         *args],
        env={**env, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_a_missing_mount_point_is_one_line_and_exit_1(emulator: Emulator, tmp_path: Path) -> None:
    result = helper("none", str(tmp_path / "nowhere"), "-o", f"server={emulator.url}",
                    env=mount_env(emulator))  # fmt: skip
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if "error" in x]
    assert "nowhere" in line


def test_the_helper_convention_called_directly(emulator: Emulator, workdir: Path) -> None:
    """`jhfs none MNT -o ...` as mount.fuse3 runs it, here without mount(8)."""
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    env = mount_env(emulator)
    jhfs_bin = jhfs_command(workdir / "bin")
    try:
        result = subprocess.run(
            [str(jhfs_bin), "none", str(mountpoint), "-o",
             f"server={emulator.url},cache_dir={workdir}/cache,noauto,nodev,nosuid"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        job = emulator.create_finished(status="Failed")
        assert (mountpoint / "jobs" / job / "status").read_text() == "Failed\n"
        options = mount_options(mountpoint)
        assert {"nodev", "nosuid"} <= options
        pid = int(os.getxattr(mountpoint, XATTR_PID))
        result = subprocess.run([str(jhfs_bin), "umount", str(mountpoint)], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_for(lambda: gone(pid), what="the jhfs process to exit")
    finally:
        if mount_options(mountpoint):
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], check=False)


def mount_options(path: Path) -> set[str]:
    """The mount options of the mount at `path` in this namespace (empty if none)."""
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            if fields[4] == str(path):
                return set(fields[5].split(","))
    return set()


def readme_unit() -> str:
    """The systemd unit README.md shows (the fenced block that starts with [Unit])."""
    readme = (CHECKOUT / "README.md").read_text()
    [unit] = [
        block
        for block in re.findall(r"```ini\n(.*?)```", readme, re.DOTALL)
        if block.startswith("[Unit]")
    ]
    return str(unit)


def test_readme_systemd_user_service(emulator: Emulator, workdir: Path) -> None:
    """README's unit, run as systemd would (systemd is not running here): its
    environment, ExecStartPre, ExecStart in the background until the mount is
    there, then ExecStop; ExecStart exits 0 and nothing stays mounted."""
    home = workdir / "home"
    jhfs_bin = jhfs_command(workdir / "bin")
    settings: dict[str, list[str]] = {}
    for line in readme_unit().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            value = value.replace("%h", str(home)).replace("/usr/local/bin/jhfs", str(jhfs_bin))
            settings.setdefault(key, []).append(value)
    env = {k: v for k, v in mount_env(emulator).items() if k not in ("JULIAHUB_TOKEN", "HOME")}
    env["HOME"] = str(home)
    for assignment in settings["Environment"]:
        name, _, value = assignment.partition("=")
        env[name] = value
    [env_file] = settings["EnvironmentFile"]
    env_path = Path(env_file.removeprefix("-"))
    env_path.parent.mkdir(parents=True)
    env_path.write_text(f"JULIAHUB_SERVER={emulator.url}\nJULIAHUB_TOKEN={emulator.token}\n")
    env_path.chmod(0o600)
    for line in env_path.read_text().splitlines():  # EnvironmentFile= overrides Environment=
        name, _, value = line.partition("=")
        env[name] = value
    for command in settings["ExecStartPre"]:
        subprocess.run(shlex.split(command), env=env, check=True)
    [start], [stop] = settings["ExecStart"], settings["ExecStop"]
    mountpoint = home / "jh"
    service = subprocess.Popen(
        shlex.split(start),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: mount_options(mountpoint) or service.poll() is not None,
                 what="the service to mount")  # fmt: skip
        assert service.poll() is None, service.communicate()[0]
        job = emulator.create_finished(status="Completed")
        assert job in os.listdir(mountpoint / "jobs")
        result = subprocess.run(shlex.split(stop), env=env, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert service.wait(timeout=20) == 0
        assert not mount_options(mountpoint)
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=20)
        if mount_options(mountpoint):
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], check=False)
