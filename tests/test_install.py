"""scripts/install into temporary places: jhfs and mount.jhfs run from a PATH of
only the links' directory and the system's, also once the checkout is gone,
and --uninstall removes them.

A real install: a virtual environment and pip (about 30 s; it needs the
package index, and is skipped when pip cannot reach it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import jhfs

CHECKOUT = Path(jhfs.__file__).resolve().parents[1]
OFFLINE = ("No matching distribution", "Could not find a version", "NewConnectionError")


def test_install_runs_from_path_without_the_checkout_and_uninstalls(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "build"))
    prefix, bin_dir = tmp_path / "opt" / "jhfs", tmp_path / "bin"
    env = {
        **os.environ,
        "JHFS_PREFIX": str(prefix),
        "JHFS_BIN_DIR": str(bin_dir),
        "JHFS_SBIN_DIR": "",
    }
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(checkout / "scripts" / "install")], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    if result.returncode != 0 and any(sign in result.stderr for sign in OFFLINE):
        pytest.skip("pip cannot reach the package index")
    assert result.returncode == 0, result.stderr
    assert f"installed: {bin_dir}/jhfs" in result.stdout
    shutil.rmtree(checkout)  # a copy was installed, not the checkout

    user_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    version = subprocess.run(["jhfs", "--version"], env=user_env, capture_output=True, text=True)
    assert version.stdout == f"jhfs {jhfs.__version__}\n", version.stderr
    refused = subprocess.run(["mount.jhfs", "none", str(tmp_path), "-o", "token=x"],
                             env=user_env, capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("jhfs: error: a token is never taken from mount options")
    for name in ("jhfs", "mount.jhfs"):
        assert (bin_dir / name).resolve().is_relative_to(prefix)

    result = subprocess.run([str(CHECKOUT / "scripts" / "install"), "--uninstall"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not prefix.exists()
    assert sorted(bin_dir.iterdir()) == []
