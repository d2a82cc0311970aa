"""One malformed job in the server's listing hides only itself, not every job."""

from __future__ import annotations

from pathlib import Path

from conftest import Emulator, wait_for
from mounting import module_emulator, mount_jhfs, sh

emulator = module_emulator()


def test_a_miscased_status_leaves_the_other_jobs_listed(emulator: Emulator, tmp_path: Path) -> None:
    good = emulator.create_finished(status="Completed")
    bad = emulator.create_finished(status="completed")  # mis-cased: a server error
    with mount_jhfs(emulator, tmp_path) as mnt:
        listing = sh(f"ls {mnt.jobs}")
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.split() == [good]
        assert sh(f"cat {mnt.job(good)}/status").stdout == "Completed\n"
        by_name = sh(f"cat {mnt.job(bad)}/status")
        assert by_name.returncode != 0
        assert "Input/output error" in by_name.stderr
        # Listings repeat: the warning is not.
        listed_before = emulator.stats()["requests"].get("get_jobs", 0)
        wait_for(
            lambda: (
                sh(f"ls {mnt.jobs}").returncode == 0
                and emulator.stats()["requests"].get("get_jobs", 0) > listed_before
            ),
            what="a second listing",
        )
        warnings = [line for line in mnt.log_text().splitlines() if "left out of the job" in line]
        assert len(warnings) == 1 and bad in warnings[0], mnt.log_text()
