"""The advisory scan: pip-audit over the locked dependencies, with a verdict a reader can trust.

Usage: ``python .ci/audit.py PIP_AUDIT LOCKFILE``. Exit 1 when a locked version has a known vulnerability; exit 0
when none was found — and then say plainly how many packages were really checked: where no advisory source answers
(PyPI's vulnerability data or OSV unreachable, as on a machine that reaches only a package mirror), a scan that
audited nothing must not read as "no vulnerabilities".
"""

from __future__ import annotations

import json
import subprocess
import sys


def main(pip_audit: str, lockfile: str) -> int:
    """Run the scan, print the verdict, return the exit code."""
    done = subprocess.run(  # noqa: S603 - our own pip-audit, on our own lockfile
        [pip_audit, "-r", lockfile, "--disable-pip", "--no-deps", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit gave no report (exit {done.returncode}): {done.stderr.strip()[-400:]}")
        print("audit: NOT SCANNED — no advisory source answered from this machine")
        return 0
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = len(deps) - len(skipped)
    for dep in vulnerable:
        ids = ", ".join(
            v.get("id", "?") + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
            for v in dep["vulns"]
        )
        print(f"audit: {dep['name']} {dep.get('version', '')}: {ids}")
    if vulnerable:
        print(f"audit: {len(vulnerable)} locked package(s) with known vulnerabilities: update the lock (./dev lock)")
        return 1
    if audited == 0:
        print(
            f"audit: NOT SCANNED — none of the {len(deps)} locked packages could be checked: no advisory source "
            f"answered from this machine ({skipped[0]['skip_reason'] if skipped else 'no reason given'})"
        )
    else:
        print(f"audit: no known vulnerabilities in {audited} of {len(deps)} locked packages ({len(skipped)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
