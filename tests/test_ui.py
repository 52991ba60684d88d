"""What a tech lead does with the pages' small helpers, in Debian's Chromium: removing a team member's
row, copying a plan document, downloading the app's .env, telling Pending from Running at a glance.
And the same removal without JavaScript."""

import json

import pytest
from playwright.sync_api import Page, expect

from provisioning.models import Credential
from tests.conftest import finished_run, form_data, seal_key
from tests.staged import staged_run
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)


def _fill_valid_form(page: Page) -> None:
    page.get_by_label("New customer's name").press_sequentially("Acme Corp")
    page.get_by_label("AWS account id").fill("111122223333")
    page.get_by_label("Role ARN", exact=True).fill("arn:aws:iam::111122223333:role/OnrampAccess")
    page.get_by_label("External id", exact=True).fill("acme-external-id-0123456789")
    page.get_by_label("App origin for uploads (CORS)").fill("https://acme-corp.example.com")


@pytest.mark.browser
def test_a_team_member_row_can_be_removed_and_the_others_are_kept(page, live_server, worker, alice, client):
    base = live_server.url
    log_in(page, base)
    page.goto(f"{base}/onboard/")
    _fill_valid_form(page)
    emails = ["ann@agency.example", "ben@agency.example", "cat@agency.example"]
    page.locator("[name='team-0-email']").fill(emails[0])
    for index in (1, 2):
        page.get_by_role("button", name="Add a team member").click()
        page.locator(f"[name='team-{index}-email']").fill(emails[index])
    page.locator("[name='team-2-policy']").select_option("ReadOnlyAccess")
    expect(page.locator("[data-member]")).to_have_count(3)
    expect(page.locator("[name$='-DELETE']").first).to_be_hidden()  # the no-JS checkbox gives way to a button

    page.get_by_role("button", name="Remove team member 2").click()
    expect(page.locator("[data-member]")).to_have_count(2)
    expect(page.locator("[name='team-TOTAL_FORMS']")).to_have_value("2")
    # The rows after it were numbered again: no gap for the formset.
    expect(page.locator("[name='team-1-email']")).to_have_value(emails[2])
    expect(page.locator("[name='team-1-policy']")).to_have_value("ReadOnlyAccess")
    expect(page.locator("[data-member] legend")).to_have_text(["Team member 1", "Team member 2"])
    expect(page.locator("[name='team-1-email']")).to_be_focused()  # focus went to the next row

    page.get_by_role("button", name="Preview the plan").click()
    expect(page).to_have_url(f"{base}/onboard/preview/")
    planned = page.locator("li.plan-item[data-item^='team.member:']")  # once the plan's read is done
    expect(planned).to_have_count(2, timeout=30_000)
    assert [planned.nth(i).get_attribute("data-item") for i in range(2)] == [
        f"team.member:{emails[0]}",
        f"team.member:{emails[2]}",
    ]

    # Removing the last row leaves a team-less onboarding, and "Add" still works after it.
    page.goto(f"{base}/onboard/")
    page.get_by_role("button", name="Remove team member 1").click()
    expect(page.locator("[data-member]")).to_have_count(0)
    expect(page.get_by_role("button", name="Add a team member")).to_be_focused()
    page.get_by_role("button", name="Add a team member").click()
    expect(page.locator("[name='team-0-email']")).to_be_focused()


@pytest.mark.django_db
def test_without_javascript_a_ticked_row_is_left_out_of_the_plan(client, alice):
    client.force_login(alice)
    response = client.get("/onboard/")
    assert 'name="team-0-DELETE"' in response.content.decode()  # offered as a checkbox
    assert "Remove this member" in response.content.decode()
    client.post("/onboard/", form_data(**{"team-0-DELETE": "on"}))
    spec = client.session["onboarding_draft"]["spec"]
    assert [m["email"] for m in spec["team"]] == ["dev@agency.example"]


@pytest.mark.browser
def test_download_env_saves_the_revealed_block_as_the_apps_name(page, live_server, alice):
    run = finished_run(alice)
    key = seal_key(run, secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", bucket="acme-app-media", region="us-west-2")
    base = live_server.url
    log_in(page, base)
    page.goto(f"{base}/credentials/{key.pk}/")
    page.get_by_role("button", name="Reveal once").click()
    block = page.locator("#secret-block").inner_text()
    assert "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" in block
    key.refresh_from_db()
    assert key.state == Credential.State.REVEALED and key.ciphertext == ""  # the server kept nothing
    with page.expect_download() as download:
        page.get_by_role("button", name="Download acme-app.env").click()
    assert download.value.suggested_filename == "acme-app.env"
    saved = download.value.path().read_text()
    assert saved.strip() == block.strip()
    assert download.value.url.startswith("blob:")  # made in the page, not fetched from the server


@pytest.mark.browser
def test_each_plan_document_and_the_cli_transcript_have_a_copy_button(page, live_server, worker, alice):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    base = live_server.url
    log_in(page, base)
    page.goto(f"{base}/onboard/")
    _fill_valid_form(page)
    page.get_by_role("button", name="Preview the plan").click()
    documents = page.locator("pre.doc[data-document]")
    expect(documents).to_have_count(4, timeout=30_000)  # once the plan's read is done
    count = documents.count()
    for summary in page.locator("details > summary").all():
        summary.click()
    expect(page.locator("button[data-copy]")).to_have_count(count + 1)
    cors = page.locator("details", has=page.locator("pre[data-document='cors']"))
    cors.get_by_role("button", name="Copy the S3 CORS configuration").click()
    expect(cors.get_by_role("button", name="Copy the S3 CORS configuration")).to_have_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert json.loads(copied) == json.loads(page.locator("pre[data-document='cors']").inner_text())
    page.get_by_role("button", name="Copy the AWS CLI commands").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == page.locator("#cli").inner_text()


BADGE_LOOKS = """() => Object.fromEntries([...document.querySelectorAll("tr[data-run] .badge")].map((b) => {
  const s = getComputedStyle(b);
  return [b.textContent.trim(), {background: s.backgroundColor, color: s.color, border: s.borderTopStyle}];
}))"""


@pytest.mark.browser
def test_pending_and_running_badges_look_different(page, live_server, alice):
    staged_run(alice, status="pending", states={}, account_id="444455556666")
    staged_run(alice, status="running", states={"preflight": "running"}, account_id="333344445555")
    base = live_server.url
    log_in(page, base)
    looks = page.evaluate(BADGE_LOOKS)
    pending, running = looks["Pending"], looks["Running"]
    assert pending["background"] != running["background"], looks
    assert pending["color"] != running["color"], looks
    assert pending["border"] == "dashed" and running["border"] == "solid", looks
