"""The demo out of the box (issue 25): what `make run` sets up — its demo data, its sandbox and the sandbox
tooling that deploys Demo Co's role — onboards Demo Co from the browser to Succeeded, and `manage.py onboard
--spec examples/demo.json --wait` in another terminal, with no variable set by hand, onboards it again."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import RUN_TIMEOUT_MS, browser_type_launch_args  # noqa: F401 (Debian's Chromium)
from tests.test_make_run import Output, _leave_nothing, descendants, run_env

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent


def _onboard_demo_co(page: Page, base: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill("techlead")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    page.goto(f"{base}/onboard/")
    page.get_by_label("Customer", exact=True).select_option(label="Demo Co (111122223333)")
    expect(page.get_by_label("AWS account id")).to_have_value("111122223333")
    expect(page.get_by_label("Role ARN", exact=True)).to_have_value("arn:aws:iam::111122223333:role/OnrampAccess")
    # The same names as examples/demo.json, so the command line's run afterwards keeps what this one made.
    page.get_by_label("Account alias (optional)").fill("demo-co")
    page.get_by_label("App name (IAM user)").fill("demo-app")
    page.get_by_label("S3 bucket").fill("demo-co-app-media")
    page.get_by_label("ECR repository").fill("demo-app")
    page.get_by_label("App origin for uploads (CORS)").fill("https://demo-app.herokuapp.com")
    page.locator("[name='team-0-email']").fill("lead@agency.example")
    page.locator("[name='team-0-role']").select_option("tech_lead")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page).to_have_url(f"{base}/onboard/preview/")
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/runs/[0-9a-f-]{{36}}/$"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT_MS)


def test_make_runs_demo_onboards_demo_co_in_the_browser_and_from_the_command_line(page, tmp_path):
    env = {k: v for k, v in run_env(tmp_path).items() if not k.startswith("CELERY_")}
    env_file = env["ENV_FILE"]  # make run's own .env (a fresh clone's), not the test session's
    process = subprocess.Popen(
        ["bin/run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    out = Output(process.stdout)
    family: set[int] = set()
    try:
        out.wait_for("Ctrl-C stops everything.", timeout=180, process=process)
        family |= descendants(process.pid)
        assert any("Demo Co (account 111122223333): role OnrampAccess deployed" in line for line in out.lines)
        password = next(line for line in out.lines if "with password: " in line).split("with password: ")[1].split()[0]
        _onboard_demo_co(page, f"http://127.0.0.1:{env['PORT']}", password)

        # Another terminal: no variable set, only the checkout's .env (which ENV_FILE stands for here).
        plain = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": env_file}  # noqa: S108
        done = subprocess.run(
            [sys.executable, "manage.py", "onboard", "--spec", "examples/demo.json", "--wait"],
            cwd=ROOT, env=plain, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"status": "succeeded"' in done.stdout, done.stdout
        assert "dev@agency.example" in done.stdout  # the member the spec adds to what the browser's run made

        family |= descendants(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        _leave_nothing(process, family)
    out.join()
