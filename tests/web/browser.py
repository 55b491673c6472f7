"""A real browser for the page tests: Debian's chromium driven by Playwright, never a
downloaded browser, and axe-core from npm, self-hosted. Both are installed here when
missing (CI starts on a machine without them): a page test that cannot find its browser
fails, it never skips."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
AXE_VERSION = "4.10"
ROOT = Path(__file__).resolve().parents[2]
# Kept between runs, ignored by git: like the embedded PostgreSQL, a tool the suite fetches.
TOOLS = ROOT / ".cache" / "test-tools"
AXE = TOOLS / "node_modules" / "axe-core" / "axe.min.js"


# The browser, and a font with Hangul so that Korean pages (and their screenshots) show text.
PACKAGES = ("chromium", "fonts-noto-cjk")
HANGUL_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def ensure_chromium() -> Path:
    if CHROMIUM.exists() and HANGUL_FONT.exists():
        return CHROMIUM
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".apt-lock").open("w") as lock:  # apt itself refuses two at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_chromium()


def _install_chromium() -> Path:
    if CHROMIUM.exists() and HANGUL_FONT.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            f"the page tests need Debian's {' and '.join(PACKAGES)}: `apt-get install {' '.join(PACKAGES)}` (as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True, text=True, timeout=900).returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=900, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=900, check=True)
    if not (CHROMIUM.exists() and HANGUL_FONT.exists()):
        raise RuntimeError(f"apt-get installed {' '.join(PACKAGES)}, yet {CHROMIUM} or {HANGUL_FONT} is missing")
    return CHROMIUM


def ensure_axe() -> str:
    TOOLS.mkdir(parents=True, exist_ok=True)
    # One test worker installs while the others wait (they run at once on a fresh clone).
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AXE.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("the accessibility tests need npm to install axe-core")
            subprocess.run(
                [npm, "install", "--prefix", str(TOOLS), "--no-save", "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
                capture_output=True, text=True, timeout=600, check=True,
            )
    return AXE.read_text()
