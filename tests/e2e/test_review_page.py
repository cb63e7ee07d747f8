"""The reviewer page (`GET /review`) in a real headless Chromium, driven by selenium through ChromeDriver: a reviewer
signs in with their key, sees the pending request the agent's SDK call waits on (its arguments as pretty JSON, an
XSS payload among them shown as text and never run), approves it with a reason, and the waiting call returns
approved with a token; the decided history and the ledger receipt show it. Runs on both backends.

Skipped only when Chromium or ChromeDriver is missing and LEDGIX_E2E_REQUIRE_BROWSER is unset (scripts/test.sh sets
it, so CI never skips silently). LEDGIX_SCREENSHOT=1 also saves docs/images/review-page.png (a pending queue)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from ledgix_python import ReviewPendingError
from ledgix_python.models import ClearanceRequest

from conftest import BACKEND, Vault, WaitingClearance, ledger, started, unique, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = os.environ.get("LEDGIX_E2E_REQUIRE_BROWSER", "") not in ("", "0", "false")
HAVE_BROWSER = os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)
if not HAVE_BROWSER and not REQUIRE_BROWSER:
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver; "
                "LEDGIX_E2E_REQUIRE_BROWSER=1 makes this a failure)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (after the skip: selenium is only needed with a browser)
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service as ChromeService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "review-page.png"
DASHBOARD_ORIGIN = "https://dashboard.example"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
REVIEW_ALWAYS = 'package n\ndefault decision := "review"'
# Agent-controlled strings that would run if the page ever put them into markup.
XSS_IMG = "<img src=x onerror=window.__pwned='img';document.title='pwned'>"
XSS_SCRIPT = "</pre><script>window.__pwned='script'</script>"
WAIT = 30


@pytest.fixture(scope="module")
def page_vault():
    """A vault sealing every 2 s (so a receipt is seen going from waiting to sealed) that admits CORS from one
    dashboard origin."""
    v = started(Vault(VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="2", VAULT_CORS_ALLOWED_ORIGIN=DASHBOARD_ORIGIN))
    yield v
    v.cleanup()


@pytest.fixture(scope="module")
def browser():
    if not HAVE_BROWSER:
        pytest.fail(f"LEDGIX_E2E_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing")
    # Never let selenium fetch a browser or driver of its own: the ones installed are the ones tested.
    os.environ.setdefault("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="ledgix-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --- helpers ----------------------------------------------------------------------------------------------------

def until(driver, condition, what: str, timeout: float = WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d), message=f"{what} within {timeout:.0f}s")


def visible_text(driver, element_id: str) -> str:
    element = driver.find_element(By.ID, element_id)
    return element.text if element.is_displayed() else ""


def open_page(driver, vault: Vault) -> None:
    """A fresh, signed-out page on this vault (sessionStorage is per origin and tab)."""
    driver.get(f"{vault.url}/review")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{vault.url}/review")
    until(driver, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), "the sign-in form")


def sign_in(driver, key: str) -> None:
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "sign-in-button").click()


def card(driver, request_id: str):
    found = driver.find_elements(By.CSS_SELECTOR, f'article.review[data-request-id="{request_id}"]')
    return found[0] if found and found[0].is_displayed() else None


def history_row(driver, request_id: str):
    found = driver.find_elements(By.CSS_SELECTOR, f'#history-rows tr[data-request-id="{request_id}"]')
    return found[0] if found and found[0].is_displayed() else None


def assert_nothing_injected(driver) -> None:
    assert driver.execute_script("return window.__pwned === undefined"), "an agent string ran as script"
    assert driver.title != "pwned"
    assert driver.find_elements(By.TAG_NAME, "img") == [], "an agent string became an element"
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 1, "only review.js is a script"
    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        raise AssertionError(f"an alert opened: {text!r}")
    except NoAlertPresentException:
        pass


def csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


# --- the page's HTTP surface --------------------------------------------------------------------------------------

def test_the_page_is_served_with_a_strict_csp(page_vault):
    for path, content_type, cache in (("/review", "text/html", "no-store"),
                                      ("/review/review.js", "text/javascript", "no-cache"),
                                      ("/review/review.css", "text/css", "no-cache")):
        r = httpx.get(f"{page_vault.url}{path}", timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(content_type), r.headers
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == cache
        assert r.headers["x-request-id"]
    page = httpx.get(f"{page_vault.url}/review", timeout=10).text
    assert 'src="review/review.js"' in page and "<style" not in page and " style=" not in page


def test_the_dashboard_origin_gets_a_cors_preflight(page_vault):
    r = httpx.options(f"{page_vault.url}/reviews/some-request/decision", timeout=10, headers={
        "Origin": DASHBOARD_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-vault-api-key,content-type,idempotency-key"})
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = r.headers["access-control-allow-headers"].lower()
    assert all(h in allowed for h in ("x-vault-api-key", "content-type", "idempotency-key")), allowed
    assert int(r.headers["access-control-max-age"]) > 0
    other = httpx.options(f"{page_vault.url}/reviews", timeout=10, headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert other.status_code != 204 and "access-control-allow-origin" not in other.headers
    with page_vault.reviewer() as reviewer:
        r = reviewer.get("/reviews", params={"status": "pending"}, headers={"Origin": DASHBOARD_ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN


# --- in the browser -----------------------------------------------------------------------------------------------

def test_a_wrong_key_or_a_key_without_the_reviewer_role_shows_the_error(page_vault, browser):
    open_page(browser, page_vault)
    sign_in(browser, "lvk_not_a_key_" + unique("x"))
    error = until(browser, lambda d: visible_text(d, "sign-in-error"), "the 401 error")
    assert "401" in error and "unauthorized" in error, error
    assert browser.find_element(By.ID, "sign-in").is_displayed() and not browser.find_element(By.ID, "app").is_displayed()

    sign_in(browser, page_vault.api_key)  # the agent's key: roles agent + consumer
    until(browser, lambda d: "403" in visible_text(d, "sign-in-error"), "the 403 error")
    error = visible_text(browser, "sign-in-error")
    assert "forbidden_role" in error and "reviewer" in error, error
    # A refused key is never kept, and no key is ever put where it outlives the tab or shows in a URL.
    assert browser.execute_script("return sessionStorage.length") == 0
    assert browser.execute_script("return localStorage.length") == 0
    assert "lvk_" not in browser.current_url


def test_a_reviewer_approves_in_the_browser_and_the_waiting_sdk_call_returns(page_vault, browser):
    tool = unique("wire_transfer")
    page_vault.register(unique("review_all"), [tool], rego=REVIEW_ALWAYS)

    # A request that stays pending (the queue is not empty in the screenshot), then the one the SDK waits on.
    other_args = {"amount": 1250, "currency": "EUR", "to_iban": "DE89 3704 0044 0532 0130 00",
                  "memo": "Invoice 2026-118"}
    with page_vault.client(review_mode="detach") as detached, pytest.raises(ReviewPendingError) as pending:
        detached.request_clearance(ClearanceRequest(tool_name=tool, tool_args=other_args, agent_id="billing-agent"))
    other_id = pending.value.pending_approval.request_id

    args = {"amount": 980, "currency": "USD", "to": "acct_7731", "memo": XSS_IMG, "note": XSS_SCRIPT,
            "lines": [{"sku": "A-1", "qty": 2}]}
    waiting = WaitingClearance(page_vault, ClearanceRequest(
        tool_name=tool, tool_args=args, agent_id="payments-agent", context={"ticket": XSS_IMG}), review_timeout=90)
    with page_vault.reviewer() as reviewer:
        def waiting_request():
            reviews = reviewer.get("/reviews", params={"status": "pending"}).json()["reviews"]
            return next((r["request_id"] for r in reviews if r["tool_name"] == tool and r["request_id"] != other_id),
                        None)

        request_id = wait_for(waiting_request, WAIT, what="the waiting SDK call's pending request")

    open_page(browser, page_vault)
    sign_in(browser, page_vault.reviewer_key)
    until(browser, lambda d: card(d, request_id) and card(d, other_id), "both pending requests in the queue")
    assert browser.execute_script("return sessionStorage.getItem('ledgix.review.apiKey')") == page_vault.reviewer_key
    assert browser.execute_script("return localStorage.length") == 0 and "lvk_" not in browser.current_url

    shown = card(browser, request_id)
    assert shown.find_element(By.CSS_SELECTOR, ".tool").text == tool
    # Pretty JSON of what was sent (the vault keeps keys in canonical order): the payloads are text, not markup.
    pre = shown.find_element(By.CSS_SELECTOR, "pre.args")
    assert pre.get_attribute("textContent") == json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True)
    assert XSS_IMG in pre.text and XSS_SCRIPT in pre.text
    assert XSS_IMG in shown.find_element(By.CSS_SELECTOR, "pre.context").get_attribute("textContent")
    assert shown.find_element(By.CSS_SELECTOR, ".reason-code").text == "policy_review"
    assert shown.find_element(By.CSS_SELECTOR, ".confidence").text == "extra_high"
    assert shown.find_element(By.CSS_SELECTOR, ".age").text.endswith("ago")
    assert_nothing_injected(browser)

    if os.environ.get("LEDGIX_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.find_element(By.ID, "reviewer-name").send_keys("Dana")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SCREENSHOT))
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    name = browser.find_element(By.ID, "reviewer-name")
    name.clear()
    name.send_keys("Dana (e2e)")
    shown.find_element(By.CSS_SELECTOR, "textarea.decision-reason").send_keys("Checked the invoice with finance")
    shown.find_element(By.CSS_SELECTOR, "button.approve").click()

    assert waiting.approved().request_id == request_id

    until(browser, lambda d: card(d, request_id) is None, "the approved request leaving the queue")
    assert card(browser, other_id), "the other request still waits"
    row = until(browser, lambda d: history_row(d, request_id), "the decision in the history")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == request_id and cells[2] == tool and cells[3] == "approved" and cells[4] == "Dana (e2e)", cells
    assert "Checked the invoice with finance" in cells[5], cells
    assert browser.execute_script("return sessionStorage.getItem('ledgix.review.reviewerName')") == "Dana (e2e)"

    # The receipt: the review.decision event's hash and receipt key, then "sealed" once an anchor round ran.
    with page_vault.reviewer() as reviewer:
        event = [e for e in ledger(reviewer) if e["request_id"] == request_id][-1]
    assert event["action_category"] == "review.decision" and event["action_metadata"]["reviewer_name"] == "Dana (e2e)"
    row.click()
    until(browser, lambda d: event["event_hash"] in visible_text(d, "receipt-events"), "the receipt's event hash")
    assert event["receipt_key_id"] in visible_text(browser, "receipt-events")
    proof = until(browser, lambda d: "Sealed in checkpoint" in visible_text(d, "receipt-proof")
                  and visible_text(d, "receipt-proof"), "the inclusion proof", timeout=45)
    assert "checks out" in proof and "NOT" not in proof, proof
    with page_vault.reviewer() as reviewer:
        sealed = [e for e in ledger(reviewer) if e["event_hash"] == event["event_hash"]][0]
    assert f"Sealed in checkpoint {sealed['checkpoint_id']}:" in proof, (proof, sealed["checkpoint_id"])
    assert_nothing_injected(browser)
    assert csp_violations(browser) == [], "the page itself never trips its CSP"

    browser.find_element(By.ID, "sign-out").click()
    until(browser, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), "the sign-in form after signing out")
    assert browser.execute_script("return sessionStorage.getItem('ledgix.review.apiKey')") is None
    with page_vault.reviewer() as reviewer:
        assert reviewer.post(f"/reviews/{other_id}/decision", json={"approved": False}).status_code == 200


def test_decision_errors_from_the_vault_are_shown(page_vault, browser):
    """403 when a key tries to approve a request it made itself; 409 when someone decided first."""
    _, key = page_vault.new_tenant()  # one key holding every role, reviewer included
    tool = unique("refund")
    page_vault.register(unique("review_all"), [tool], rego=REVIEW_ALWAYS, api_key=key)
    with page_vault.http(key) as own:
        mine = own.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 5}}).json()
    assert mine["status"] == "pending_review", mine
    page_vault.register(unique("review_all"), [tool], rego=REVIEW_ALWAYS)
    with page_vault.client(review_mode="detach") as agent, pytest.raises(ReviewPendingError) as pending:
        agent.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 6}))
    theirs = pending.value.pending_approval.request_id

    open_page(browser, page_vault)
    sign_in(browser, key)
    own_card = until(browser, lambda d: card(d, mine["request_id"]), "its own request in the queue")
    own_card.find_element(By.CSS_SELECTOR, "button.approve").click()
    error = until(browser, lambda d: own_card.find_element(By.CSS_SELECTOR, ".decision-error").text,
                  "the 403 error on the card")
    assert "403" in error and "forbidden" in error, error
    with page_vault.http(key) as own:
        assert own.get(f"/clearance-status/{mine['request_id']}").json()["status"] == "pending_review"

    # The dev tenant's reviewer sees the other request; decided elsewhere first, the page's click gets 409.
    open_page(browser, page_vault)
    sign_in(browser, page_vault.reviewer_key)
    other_card = until(browser, lambda d: card(d, theirs), "the agent's request in the queue")
    with page_vault.reviewer() as reviewer:
        assert reviewer.post(f"/reviews/{theirs}/decision", json={"approved": False}).status_code == 200
    try:
        other_card.find_element(By.CSS_SELECTOR, "button.approve").click()
    except StaleElementReferenceException:
        pass  # a refresh between the two removed it already: what follows accepts that

    def conflict_shown_or_gone(d) -> bool:
        shown = card(d, theirs)
        return shown is None or "409" in shown.find_element(By.CSS_SELECTOR, ".decision-error").text

    until(browser, conflict_shown_or_gone, "the 409 error, or the request already gone from the refreshed queue")
    if card(browser, theirs) is not None:
        error = card(browser, theirs).find_element(By.CSS_SELECTOR, ".decision-error").text
        assert "not_pending" in error, error
    browser.find_element(By.ID, "sign-out").click()


def test_an_unsealed_receipt_waits_for_the_next_anchor_round(browser):
    """A vault whose next anchor round is an hour away: the receipt says so (embedded only: on AWS every running
    vault's anchor timer seals every tenant)."""
    if BACKEND == "aws":
        pytest.skip("on the AWS backend every running vault's anchor timer seals every tenant")
    slow = started(Vault(VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="3600"))
    try:
        time.sleep(1)  # the timer's first tick runs at start; what follows waits for the next one
        tool = unique("export")
        slow.register(unique("review_all"), [tool], rego=REVIEW_ALWAYS)
        with slow.client(review_mode="detach") as agent, pytest.raises(ReviewPendingError) as pending:
            agent.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"rows": 10}))
        request_id = pending.value.pending_approval.request_id
        open_page(browser, slow)
        sign_in(browser, slow.reviewer_key)
        shown = until(browser, lambda d: card(d, request_id), "the pending request")
        shown.find_element(By.CSS_SELECTOR, "button.show-receipt").click()
        text = until(browser, lambda d: "anchor round" in visible_text(d, "receipt-proof")
                     and visible_text(d, "receipt-proof"), "the waiting receipt")
        assert text.startswith("Waiting for the next anchor round"), text
        assert "not sealed yet" in visible_text(browser, "receipt-events")
        browser.find_element(By.ID, "sign-out").click()
    finally:
        slow.cleanup()
