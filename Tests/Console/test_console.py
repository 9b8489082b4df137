"""Browser tests of the Skiff console (/ui/), with Playwright (sync API) driving Debian's Chromium.

Run by scripts/console-test.sh, which starts a server with API keys. Environment:

- SKIFF_URL: base URL of a running server that serves /ui (default http://127.0.0.1:8080)
- SKIFF_ADMIN_KEY: a key with the admin scope; SKIFF_SEND_KEY: one with send and receive only
- CHROMIUM: the browser (default /usr/bin/chromium)
- CONSOLE_SCREENSHOTS: a directory; when set, test_screenshots saves the documentation's pictures

Every test makes its own uniquely named queues and topics over the HTTP API (and deletes them
after), so none depends on another or on their order. Every test fails if the page logged an error
or a warning, or threw: the only console lines let through are the browser's own "Failed to load
resource" notes for API answers the test itself provokes (a 401 before signing in, a 404 lookup).
"""

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, expect, sync_playwright

BASE = os.environ.get("SKIFF_URL", "http://127.0.0.1:8080").rstrip("/")
ADMIN_KEY = os.environ.get("SKIFF_ADMIN_KEY", "")
SEND_KEY = os.environ.get("SKIFF_SEND_KEY", "")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 360, "height": 740}
WAIT_MS = 10_000  # the console polls every 2 s: a change shows within one or two rounds


# ------------------------------------------------------------------------------------------------
# The HTTP API, straight (urllib): to arrange each test and to check what the console did.


def http(method, path, body=None, key=ADMIN_KEY):
    """(status, headers, parsed JSON or None) of one request; HTTP errors are answers, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, text = error.code, error.headers, error.read()
    return status, headers, (json.loads(text) if text else None)


def ok(method, path, body=None, expected=(200, 201, 204)):
    status, _, answer = http(method, path, body)
    assert status in expected, f"{method} {path}: {status} {answer}"
    return answer


def send(queue, body):
    return ok("POST", f"/api/{queue}", body)["id"]


def stats(queue):
    return ok("GET", f"/api/{queue}/stats")


def dead_letter(queue, count):
    """Makes `count` dead letters: maxReceiveCount 1, then each message received with a
    visibility timeout and nacked (README: past maxReceiveCount a message moves to {queue}-dlq)."""
    ok("PUT", f"/api/{queue}/config", {"maxReceiveCount": 1})
    for n in range(count):
        send(queue, {"n": n})
        status, headers, _ = http("GET", f"/api/{queue}?timeout=1000&visibility=")
        assert status == 200
        ok("POST", f"/api/{queue}/messages/{headers['Skiff-Receipt']}/nack", {"reason": f"failure {n}"})
    assert stats(queue)["deadLetter"] == count


def wait_until(predicate, timeout=15.0, message="condition", page=None):
    """Polls `predicate`; with a page, waits through it so that its route handlers run meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if page is not None:
            page.wait_for_timeout(200)
        else:
            time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message}")


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def browser():
    assert ADMIN_KEY and SEND_KEY, "set SKIFF_ADMIN_KEY and SKIFF_SEND_KEY (scripts/console-test.sh does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class BrowserLog:
    """Console errors and warnings, and uncaught exceptions, of one page.

    Chromium itself logs an error line for every HTTP response with an error status ("Failed to
    load resource: ... status of 401"). A test that provokes one declares it with `expect_http`;
    any other line is a problem.
    """

    NETWORK = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

    def __init__(self, page):
        self.problems = []
        self.expected = []
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def expect_http(self, status, path_pattern):
        self.expected.append((status, re.compile(path_pattern)))

    def console(self, message):
        if message.type not in ("error", "warning"):
            return
        network = self.NETWORK.match(message.text)
        if network:
            path = urllib.parse.urlparse(message.location.get("url", "")).path
            if any(int(network.group(1)) == status and pattern.search(path) for status, pattern in self.expected):
                return
        self.problems.append(f"console {message.type}: {message.text} ({message.location.get('url', '')})")


def open_page(browser, viewport=WIDE):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page, BrowserLog(page)


@pytest.fixture
def session(browser):
    """A fresh browser context (nothing stored) at 1280x800: (page, log). Fails the test if the
    page logged an error or warning."""
    context, page, log = open_page(browser)
    yield page, log
    problems = list(log.problems)
    context.close()
    if problems:
        pytest.fail("the page logged problems:\n" + "\n".join(problems))


@pytest.fixture
def names():
    """Makes unique names for this test. Afterwards every queue and topic whose name starts with
    one of them (dead-letter queues, `<name>-orders`...) is deleted."""
    made = []

    def make(label):
        name = f"ct-{label}-{uuid.uuid4().hex[:8]}"
        made.append(name)
        return name

    yield make
    queues = [q["name"] for q in (http("GET", "/queues")[2] or {}).get("queues", [])]
    topics = (http("GET", "/api/topics")[2] or {}).get("topics", [])
    for base in made:
        for queue in (q for q in queues if q.startswith(base)):
            http("DELETE", f"/api/{queue}")
        for topic in (t for t in topics if t.startswith(base)):
            http("DELETE", f"/api/topics/{topic}")


def sign_in(page: Page, log: BrowserLog, route="#/", key=ADMIN_KEY):
    """Opens the console at `route` and signs in through the login form it shows."""
    log.expect_http(401, r".")  # the console learns that a key is needed from its first 401s
    page.goto(f"{BASE}/ui/{route}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login")).to_be_hidden()


def queue_row(page: Page, queue):
    return page.locator("tbody tr").filter(has=page.get_by_role("link", name=queue, exact=True))


def region(page: Page, name):
    return page.get_by_role("region", name=name, exact=True)


def shot(page: Page, name, full_page=False):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, name), full_page=full_page)


# Hostile text: every payload, were it parsed as markup and run, would call window.__pwned.push.
PWNED_INIT = "window.__pwned = []"  # for page.add_init_script, before the page loads


def assert_nothing_injected(page: Page):
    """No payload ran, and none became elements. The CSP alone stops inline handlers from running
    (so __pwned could stay empty over an innerHTML slip): the DOM check catches one regardless.
    The page's own markup has no img, iframe, object, embed or u, no script but console.js, and
    no on* attribute (console.js adds listeners with addEventListener)."""
    assert page.evaluate("window.__pwned") == [], "a payload ran"
    injected = page.evaluate(
        """() => [...document.querySelectorAll('*')].filter((el) =>
            ['img', 'iframe', 'object', 'embed', 'u'].includes(el.localName)
            || (el.localName === 'script' && el.getAttribute('src') !== 'console.js')
            || [...el.attributes].some((a) => a.name.toLowerCase().startsWith('on')))
          .map((el) => el.outerHTML.slice(0, 160))"""
    )
    assert injected == [], f"server text became elements: {injected}"


# ------------------------------------------------------------------------------------------------
# Tests


def test_assets_are_served_without_a_key_under_a_strict_csp(session):
    page, log = session
    for path, kind in (("/ui/", "text/html"), ("/ui/console.js", "javascript"), ("/ui/console.css", "text/css")):
        request = urllib.request.Request(BASE + path)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert kind in response.headers["Content-Type"]
            csp = response.headers["Content-Security-Policy"] or ""
            assert "script-src 'self'" in csp and "style-src 'self'" in csp, csp
    # /ui itself leads to the page, whose relative URLs then resolve under /ui/.
    log.expect_http(401, r".")
    page.goto(f"{BASE}/ui")
    expect(page).to_have_title(re.compile("Skiff console"))
    expect(page.get_by_label("API key")).to_be_visible()


def test_page_weight_and_time_to_first_render(session, names):
    """Measures what the closing note and docs/console.md report: the bytes of the page's three
    files and, in a fresh context signed in already, the time to the first paint and to the
    overview table holding a queue. Printed (pytest -s shows it) and written to
    $CONSOLE_METRICS when set; nothing about time is asserted. The weight is: it is a budget."""
    page, log = session
    queue = names("weight")
    send(queue, {"n": 1})
    sizes = {}
    page.on("response", lambda r: sizes.__setitem__(urllib.parse.urlparse(r.url).path, len(r.body())) if "/ui/" in r.url else None)
    # Signed in before the first load: the key in session storage, as the login form leaves it.
    page.add_init_script(f"sessionStorage.setItem('skiff-console.apiKey', {json.dumps(ADMIN_KEY)})")
    started = time.monotonic()
    page.goto(f"{BASE}/ui/#/")
    expect(queue_row(page, queue)).to_be_visible()
    table_ms = (time.monotonic() - started) * 1000
    paint = page.evaluate(
        "() => { const p = performance.getEntriesByName('first-contentful-paint')[0];"
        " const n = performance.getEntriesByType('navigation')[0];"
        " return {fcp: p ? p.startTime : null, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"
    )
    files = {path: size for path, size in sizes.items() if path in ("/ui/", "/ui/console.js", "/ui/console.css")}
    assert set(files) == {"/ui/", "/ui/console.js", "/ui/console.css"}, files
    total = sum(files.values())
    assert total < 96 * 1024, f"the console's files weigh {total} bytes, past their 96 KiB budget"
    figures = {
        "bytes": files,
        "totalBytes": total,
        "firstContentfulPaintMs": round(paint["fcp"] or -1, 1),
        "domContentLoadedMs": round(paint["dcl"], 1),
        "overviewTableMs": round(table_ms, 1),
    }
    print("console figures:", json.dumps(figures))
    if os.environ.get("CONSOLE_METRICS"):
        with open(os.environ["CONSOLE_METRICS"], "w") as out:
            json.dump(figures, out, indent=2)


def test_overview_lists_queues_and_sorts_them_from_the_keyboard(session, names):
    page, log = session
    base = names("sort")
    small, large = f"{base}-small", f"{base}-large"
    send(small, {"n": 1})
    for n in range(3):
        send(large, {"n": n})
    sign_in(page, log)
    expect(page).to_have_title("Skiff console")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(queue_row(page, large).locator("[data-col=ready]")).to_have_text("3")
    expect(queue_row(page, small).locator("[data-col=ready]")).to_have_text("1")
    expect(queue_row(page, small).locator("[data-col=deadLetter]")).to_have_text("0")

    # Only these two, then sort by Ready with the keyboard: Enter, then Space, flip the order.
    page.get_by_label("Filter queues").fill(base)
    queues = region(page, "Queues")
    expect(queues.locator("tbody tr th a")).to_have_count(2)
    ready_header = queues.get_by_role("columnheader", name="Ready", exact=True)
    ready_header.get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(ready_header).to_have_attribute("aria-sort", "descending")
    links = queues.locator("tbody tr th a")
    expect(links).to_have_text([large, small])
    page.keyboard.press("Space")
    expect(ready_header).to_have_attribute("aria-sort", "ascending")
    expect(links).to_have_text([small, large])
    expect(ready_header.get_by_role("button")).to_be_focused()


def test_overview_refreshes_live(session, names):
    page, log = session
    queue = names("live")
    send(queue, {"n": 1})
    sign_in(page, log)
    ready = queue_row(page, queue).locator("[data-col=ready]")
    expect(ready).to_have_text("1")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("window.__sameDocument = true")
    send(queue, {"n": 2})
    send(queue, {"n": 3})
    expect(ready).to_have_text("3")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_errors_show_the_server_message_and_back_off(session, names):
    page, log = session
    queue = names("errors")
    send(queue, {"n": 1})
    sign_in(page, log, f"#/queues/{queue}")
    expect(region(page, "Settings").get_by_role("button", name="Save settings")).to_be_enabled()
    log.expect_http(503, rf"/api/{queue}/stats$")
    failures = []

    def unavailable(route):
        failures.append(time.monotonic())
        route.fulfill(status=503, json={"error": "Redis is unreachable: retry"})

    page.route(f"**/api/{queue}/stats", unavailable)
    expect(page.get_by_role("alert").filter(has_text="Redis is unreachable: retry")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("Reconnecting in 4 s")
    wait_until(lambda: len(failures) >= 2, timeout=10, message="a second failed round", page=page)
    gap = failures[1] - failures[0]
    assert 3.5 < gap < 6, f"the retry came {gap:.1f} s after the failure, not the doubled 4 s"
    expect(page.locator("#live-status")).to_have_text("Reconnecting in 8 s")
    page.unroute(f"**/api/{queue}/stats")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=20_000)
    expect(page.get_by_role("alert").filter(has_text="Redis is unreachable")).to_be_hidden()


def test_peek_shows_bodies_and_changes_nothing(session, names):
    page, log = session
    queue = names("peek")
    bodies = [{"order": 1, "items": ["tea"], "note": "<b>not markup</b>"}, {"order": 2, "total": 12345678901234567890}]
    for body in bodies:
        send(queue, body)
    before = stats(queue)
    sign_in(page, log, f"#/queues/{queue}")
    peek = region(page, "Peek")
    peek.get_by_label("Messages").fill("5")
    peek.get_by_role("button", name="Peek ready messages").click()
    cards = peek.locator("article.message")
    expect(cards).to_have_count(2)
    expect(cards.nth(0).locator("pre")).to_have_text(json.dumps(bodies[0], indent=2))
    # A big integer is shown as posted, not rounded to a double.
    expect(cards.nth(1).locator("pre")).to_contain_text("12345678901234567890")
    expect(cards.nth(0)).to_contain_text("Receive count")
    assert peek.locator("b").count() == 0, "a body was rendered as markup"

    after = stats(queue)
    assert (after["ready"], after["inFlight"]) == (2, 0)
    assert after["totals"]["delivered"] == before["totals"]["delivered"] == 0
    assert [m["receiveCount"] for m in ok("GET", f"/api/{queue}/messages?peek=10")["messages"]] == [0, 0]


def test_peek_dead_letters_and_redrive_them(session, names):
    page, log = session
    queue = names("redrive")
    dead_letter(queue, 2)
    sign_in(page, log, f"#/queues/{queue}")
    peek = region(page, "Peek")
    peek.get_by_role("button", name=f"Peek {queue}-dlq").click()
    expect(peek.locator("article.message")).to_have_count(2)
    expect(peek.locator("article.message").first).to_contain_text(f"{queue} after 1 receive")
    expect(peek.locator("article.message").first).to_contain_text("failure 0")

    redrive = region(page, "Redrive dead letters")
    redrive.get_by_label("Rate").fill("20")
    redrive.get_by_role("button", name="Redrive").click()
    expect(redrive.get_by_text(f"Moved 2 messages back to {queue}.")).to_be_visible()
    after = stats(queue)
    assert (after["ready"], after["deadLetter"]) == (2, 0)
    expect(page.locator(".tile[data-tile=ready] dd")).to_have_text("2")


def test_lookup_by_id(session, names):
    page, log = session
    queue = names("lookup")
    send(queue, {"first": True})
    wanted = send(queue, {"second": "yes"})
    sign_in(page, log, f"#/queues/{queue}")
    find = region(page, "Find a message")
    find.get_by_label("Message id").fill(wanted)
    find.get_by_role("button", name="Find").click()
    card = find.locator("article.message")
    expect(card).to_contain_text(wanted)
    expect(card).to_contain_text("ready")
    expect(card.locator("pre")).to_have_text(json.dumps({"second": "yes"}, indent=2))

    unknown = "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
    status, _, answer = http("GET", f"/api/{queue}/messages/{unknown}")
    assert status == 404 and answer["error"]
    log.expect_http(404, rf"/api/{queue}/messages/{unknown}$")
    find.get_by_label("Message id").fill(unknown)
    find.get_by_role("button", name="Find").click()
    expect(find.get_by_role("alert")).to_have_text(answer["error"])
    expect(card).to_have_count(0)

    # Not ids: never sent. `..` in particular would be resolved away by the browser, turning
    # /api/q/messages/.. into GET /api/q/, a receive that deletes the message it hands out.
    requests = []
    page.on("request", lambda r: requests.append(urllib.parse.urlparse(r.url).path))
    for typed in ("..", ".", "%2e%2e", "not an id"):
        find.get_by_label("Message id").fill(typed)
        find.get_by_role("button", name="Find").click()
        expect(find.get_by_role("alert")).to_contain_text("is not a message id")
    page.wait_for_timeout(500)
    assert not [path for path in requests if path.startswith(f"/api/{queue}/messages") or path.rstrip("/") == f"/api/{queue}"], requests
    assert stats(queue)["ready"] == 2 and stats(queue)["totals"]["delivered"] == 0


def test_a_topic_link_that_is_not_a_name_calls_nothing(session):
    page, log = session
    sign_in(page, log, "#/topics")
    requests = []
    page.on("request", lambda r: requests.append(urllib.parse.urlparse(r.url).path))
    page.goto(f"{BASE}/ui/#/topics/..")
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("main")).to_contain_text("is not a topic name")
    page.wait_for_timeout(2500)  # a poll round: nothing may reach /api/subscriptions or any topic
    assert not [path for path in requests if path.startswith("/api/") and not path.startswith("/api/topics")], requests
    assert not [path for path in requests if path.startswith("/api/topics/")], requests


def test_settings_edit_saves_and_shows_the_servers_refusal(session, names):
    page, log = session
    queue = names("settings")
    send(queue, {"n": 1})
    sign_in(page, log, f"#/queues/{queue}")
    settings = region(page, "Settings")
    expect(settings.get_by_label("Visibility timeout (ms)")).to_have_value("30000")
    settings.get_by_label("Max receive count").fill("7")
    settings.get_by_label("Retention (ms)").fill("3600000")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_text("Saved")).to_be_visible()
    saved = ok("GET", f"/api/{queue}/config")
    assert (saved["maxReceiveCount"], saved["retentionMs"], saved["visibilityTimeoutMs"]) == (7, 3600000, 30000)
    assert saved["deadLetterQueue"] == f"{queue}-dlq"

    # 5 ms is below the 100 ms floor: the server's 400 message is shown as it is, nothing changes.
    status, _, refusal = http("PUT", f"/api/{queue}/config", {**saved, "visibilityTimeoutMs": 5})
    assert status == 400
    log.expect_http(400, rf"/api/{queue}/config$")
    settings.get_by_label("Visibility timeout (ms)").fill("5")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_have_text(refusal["error"])
    assert ok("GET", f"/api/{queue}/config") == saved
    # Keyboard: Revert puts back what is in force.
    settings.get_by_role("button", name="Revert").focus()
    page.keyboard.press("Enter")
    expect(settings.get_by_label("Visibility timeout (ms)")).to_have_value("30000")


def test_purge_asks_for_the_name(session, names):
    page, log = session
    queue = names("purge")
    for n in range(3):
        send(queue, {"n": n})
    sign_in(page, log, f"#/queues/{queue}")
    purge = page.get_by_role("button", name="Purge…")
    dialog = page.locator("dialog#confirm")
    confirm = dialog.get_by_role("button", name="Purge")

    purge.click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("textbox")).to_be_focused()
    dialog.get_by_role("textbox").fill(queue[:-1])
    expect(confirm).to_be_disabled()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(purge).to_be_focused()
    assert stats(queue)["ready"] == 3

    purge.click()
    dialog.get_by_role("textbox").fill(queue)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert stats(queue)["ready"] == 3

    purge.click()
    dialog.get_by_role("textbox").fill(queue)
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(page.get_by_text("Purged 3 messages.")).to_be_visible()
    assert stats(queue)["ready"] == 0
    expect(page.locator(".tile[data-tile=ready] dd")).to_have_text("0")


def test_delete_asks_for_the_name(session, names):
    page, log = session
    queue = names("delete")
    send(queue, {"n": 1})
    sign_in(page, log, f"#/queues/{queue}")
    page.get_by_role("button", name="Delete queue…").click()
    dialog = page.locator("dialog#confirm")
    dialog.get_by_role("textbox").fill(queue)
    dialog.get_by_role("textbox").press("Enter")
    expect(page).to_have_url(re.compile(r"#/$"))
    expect(page.get_by_text(f"Queue {queue} deleted.")).to_be_visible()
    assert queue not in [q["name"] for q in ok("GET", "/queues")["queues"]]
    expect(page.get_by_role("link", name=queue, exact=True)).to_have_count(0)


def test_sign_in_flow_and_where_the_key_is_kept(session):
    page, log = session
    wrong = "wrong-key-" + uuid.uuid4().hex
    _, _, unknown = http("GET", "/queues", key=wrong)
    status, _, forbidden = http("GET", "/queues", key=SEND_KEY)
    assert status == 403
    log.expect_http(401, r".")
    log.expect_http(403, r"^/queues$")
    urls = []
    page.on("request", lambda request: urls.append(request.url))

    page.goto(f"{BASE}/ui/")
    key_input = page.get_by_label("API key")
    expect(key_input).to_be_visible()
    expect(key_input).to_have_attribute("type", "password")
    expect(page.get_by_role("heading", name="Overview")).to_have_count(0)

    key_input.fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text(unknown["error"])

    key_input.fill(SEND_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text(forbidden["error"])
    expect(key_input).to_be_visible()

    key_input.fill(ADMIN_KEY)
    key_input.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#live-status")).to_have_text("Live")

    stored = page.evaluate("() => ({local: JSON.stringify(localStorage), session: Object.values(sessionStorage)})")
    assert ADMIN_KEY in stored["session"]
    assert ADMIN_KEY not in stored["local"] and SEND_KEY not in stored["local"]
    for key in (ADMIN_KEY, SEND_KEY, wrong):
        assert key not in page.url
        assert not any(key in url for url in urls), "a key went into a URL"

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("Object.values(sessionStorage)") == []
    page.reload()
    expect(page.get_by_label("API key")).to_be_visible()


def test_no_horizontal_scroll_at_360_px(browser, names):
    context, page, log = open_page(browser, NARROW)
    try:
        queue = names("narrow-" + "x" * 90)
        send(queue, {"text": "y" * 400, "nested": {"deeper": ["z" * 200]}})
        sign_in(page, log)
        page.get_by_label("Filter queues").fill(queue)
        expect(queue_row(page, queue)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

        page.get_by_role("link", name=queue, exact=True).click()
        expect(page.get_by_role("heading", name=queue, exact=True)).to_be_visible()
        region(page, "Peek").get_by_role("button", name="Peek ready messages").click()
        expect(page.locator("article.message")).to_have_count(1)
        expect(region(page, "Settings").get_by_label("Partitions")).to_have_value("1")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.get_by_role("button", name="Purge…").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.keyboard.press("Escape")
        assert not log.problems, log.problems
    finally:
        context.close()


def test_keyboard_reaches_a_queue_and_opens_it(session, names):
    page, log = session
    queue = names("keys")
    send(queue, {"n": 1})
    sign_in(page, log)
    page.get_by_label("Filter queues").fill(queue)
    expect(queue_row(page, queue)).to_have_count(1)
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == queue:
            break
    else:
        pytest.fail("Tab never reached the queue's link")
    assert page.evaluate("document.activeElement.tagName") == "A"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"#/queues/{queue}$"))
    heading = page.get_by_role("heading", name=queue, exact=True)
    expect(heading).to_be_focused()


def test_history_chart_draws_the_servers_samples(session, names):
    page, log = session
    queue = names("history")
    send(queue, {"n": 1})
    wait_until(lambda: len(ok("GET", f"/api/{queue}/history")["samples"]) >= 1, message="a first sample")
    send(queue, {"n": 2})
    wait_until(lambda: len(ok("GET", f"/api/{queue}/history")["samples"]) >= 2, message="a second sample")
    sign_in(page, log, f"#/queues/{queue}")
    depth = page.locator("figure.chart").filter(has_text="Depth")
    expect(depth.locator("svg path.series.ready")).to_have_count(1)
    assert depth.locator("svg path.series.ready").get_attribute("d").count("L") >= 1
    expect(depth.locator("svg title")).to_have_text("Depth (messages)")
    expect(depth.locator("svg desc")).to_contain_text("Ready: now")
    expect(depth.locator(".legend")).to_contain_text("Ready")


def test_history_shapes_empty_and_reset(session, names):
    """The console's side of the history contract, on answers made up by the test."""
    page, log = session
    queue = names("shapes")
    send(queue, {"n": 1})
    answer = {"queue": queue, "intervalMs": 15000, "samples": []}
    page.route(f"**/api/{queue}/history", lambda route: route.fulfill(json=answer))
    sign_in(page, log, f"#/queues/{queue}")
    expect(page.get_by_text("No history yet")).to_be_visible()
    expect(page.locator("figure.chart").first).to_be_hidden()

    # Running totals every 15 s: +30 (2/s), a reset (10 < 30: no rate), +15 (1/s), then no sample
    # for 60 s (no replica running: a gap, not a slope), then +30 over those 60 s (0.5/s).
    at = int(time.time() * 1000) - 120_000
    steps = [(0, 0), (15, 30), (30, 10), (45, 25), (105, 55)]
    answer["samples"] = [
        {"at": at + seconds * 1000, "ready": i, "inFlight": 0, "delayed": 0, "deadLetter": None,
         "enqueued": total, "delivered": total, "acked": 0}
        for i, (seconds, total) in enumerate(steps)
    ]
    page.reload()  # the session keeps the key
    rates = page.locator("figure.chart").filter(has_text="Rates")
    enqueued = rates.locator("svg path.series.enqueued")
    expect(enqueued).to_have_count(1)
    path = enqueued.get_attribute("d")
    assert path.count("M") == 3 and path.count("L") == 0, path  # three lone points
    expect(rates.locator("circle.dot.enqueued")).to_have_count(3)
    expect(rates.locator("svg desc")).to_contain_text("Enqueued/s: now 0.5, peak 2.0")
    depth = page.locator("figure.chart").filter(has_text="Depth")
    ready = depth.locator("svg path.series.ready").get_attribute("d")
    assert ready.count("M") == 2 and ready.count("L") == 3, ready  # the gap breaks the line
    expect(depth.locator("svg desc")).to_contain_text("Dead letters: no data")


def test_topics_page_shows_subscriptions_and_counters(session, names):
    page, log = session
    topic, audit, big = names("topic"), names("audit"), names("big")
    ok("PUT", f"/api/topics/{topic}/subscriptions/audit", {"queue": audit})
    ok("PUT", f"/api/topics/{topic}/subscriptions/big", {"queue": big, "filter": {"total": [{"numeric": [">=", 100]}]}})
    ok("POST", f"/api/topics/{topic}", {"total": 5})
    sign_in(page, log)
    row = page.locator("tbody tr").filter(has=page.get_by_role("link", name=topic, exact=True))
    expect(row.locator("[data-col=subscriptions]")).to_have_text("2")
    expect(row.locator("[data-col=published]")).to_have_text("1")

    page.get_by_role("navigation").get_by_role("link", name="Topics").click()
    expect(page.get_by_role("heading", name="Topics", exact=True)).to_be_visible()
    section = region(page, f"Topic {topic}")
    audit_row = section.locator("tbody tr").filter(has_text="audit")
    big_row = section.locator("tbody tr").filter(has_text="big")
    expect(audit_row.locator("[data-col=delivered]")).to_have_text("1")
    expect(big_row.locator("[data-col=filteredOut]")).to_have_text("1")
    expect(big_row.locator("[data-col=filter]")).to_contain_text('"numeric"')
    expect(section.get_by_role("columnheader", name="Push to")).to_be_hidden()  # no push subscription
    ok("POST", f"/api/topics/{topic}", {"total": 500})
    expect(big_row.locator("[data-col=delivered]")).to_have_text("1")
    expect(audit_row.locator("[data-col=delivered]")).to_have_text("2")
    section.get_by_role("link", name=big, exact=True).click()
    expect(page.get_by_role("heading", name=big, exact=True)).to_be_visible()


def test_topic_page_shows_a_push_subscription(session, names):
    """A push subscription's shape (TopicController): its endpoint and its own counters show."""
    page, log = session
    topic = names("push")
    queue = f"{topic}-hook-push"
    answer = {"topic": topic, "published": 3, "subscriptions": [{
        "name": "hook", "topic": topic, "queue": queue, "filter": None, "updatedAt": "2026-12-07T00:00:00.000Z",
        "push": {"url": "https://hooks.example/skiff", "secret": "********", "timeoutMs": 10000, "maxAttempts": 5,
                 "backoff": {"baseMs": 1000, "capMs": 60000}, "concurrency": 4, "deadLetterQueue": f"{queue}-dlq"},
        "counters": {"matched": 3, "filteredOut": 0, "queued": 3, "delivered": 2, "failed": 1, "dropped": 0},
    }]}
    sign_in(page, log)
    page.route(f"**/api/topics/{topic}/subscriptions", lambda route: route.fulfill(json=answer))
    page.goto(f"{BASE}/ui/#/topics/{topic}")
    expect(page.get_by_role("heading", name=f"Topic {topic}")).to_be_visible()
    row = page.locator("tbody tr").filter(has=page.get_by_role("link", name=queue, exact=True))
    expect(row.locator("[data-col=push]")).to_have_text("https://hooks.example/skiff")
    expect(row.locator("[data-col=filter]")).to_have_text("every message")
    for column, value in (("queued", "3"), ("delivered", "2"), ("failed", "1")):
        expect(row.locator(f"[data-col={column}]")).to_have_text(value)
    expect(page.get_by_role("columnheader", name="Failed")).to_be_visible()
    expect(page.get_by_text("3 messages published, 1 subscription.")).to_be_visible()


def test_markup_in_messages_and_errors_is_shown_as_text(session, names):
    """Nack reasons (a message's last error in peek and lookup, a dead letter's in the DLQ's peek),
    bodies that are JSON strings of markup, and an error answer: each shown verbatim, none parsed."""
    page, log = session
    queue = names("hostile")
    dead_reason = '<img src=x onerror="window.__pwned.push(1)">'
    dead_body = {"html": "<iframe src=javascript:window.__pwned.push(2)></iframe>"}
    reason = "</dd><script>window.__pwned.push(3)</script><u>underlined</u>"
    script_body = "<script>window.__pwned.push(4)</script>"
    pre_body = "</pre><img src=x onerror=window.__pwned.push(5)>"
    key_body = {"</pre><svg onload=window.__pwned.push(6)>": ["<u>not markup</u>"]}
    # The route that could echo input does not (a bad value is named, never repeated: "...must be
    # an integer"), so this refusal is made up, as a proxy or another version could send it.
    refusal = "visibilityTimeoutMs must be an integer, not <img src=x onerror=window.__pwned.push(7)>"

    def receive_and_nack(why, query=""):
        status, headers, _ = http("GET", f"/api/{queue}?timeout=1000&visibility=")
        assert status == 200
        ok("POST", f"/api/{queue}/messages/{headers['Skiff-Receipt']}/nack{query}", {"reason": why})

    ok("PUT", f"/api/{queue}/config", {"maxReceiveCount": 1})  # the nack dead-letters it
    dead = send(queue, dead_body)
    receive_and_nack(dead_reason)
    ok("PUT", f"/api/{queue}/config", {"maxReceiveCount": 5})
    retried = send(queue, script_body)
    receive_and_nack(reason, "?delay=0")  # back to ready at once, with its last error
    pre, keyed = send(queue, pre_body), send(queue, key_body)
    assert (stats(queue)["ready"], stats(queue)["deadLetter"]) == (3, 1)

    page.add_init_script(PWNED_INIT)
    sign_in(page, log, f"#/queues/{queue}")
    peek = region(page, "Peek")
    peek.get_by_role("button", name="Peek ready messages").click()
    cards = peek.locator("article.message")
    expect(cards).to_have_count(3)
    card = cards.filter(has_text=retried)
    expect(card.locator("dt:text-is('Last error') + dd")).to_have_text(reason)
    expect(card.locator("pre")).to_have_text(json.dumps(script_body))
    expect(cards.filter(has_text=pre).locator("pre")).to_have_text(json.dumps(pre_body))
    expect(cards.filter(has_text=keyed).locator("pre")).to_have_text(json.dumps(key_body, indent=2))
    expect(card.locator("pre")).to_be_visible()

    find = region(page, "Find a message")
    find.get_by_label("Message id").fill(retried)
    find.get_by_role("button", name="Find").click()
    expect(find.locator("article.message dt:text-is('Last error') + dd")).to_have_text(reason)
    expect(find.locator("article.message pre")).to_have_text(json.dumps(script_body))
    assert_nothing_injected(page)

    peek.get_by_role("button", name=f"Peek {queue}-dlq").click()
    card = peek.locator("article.message")
    expect(card).to_have_count(1)
    expect(card).to_contain_text(dead)
    expect(card.locator("dt:text-is('Its last error') + dd")).to_have_text(dead_reason)
    expect(card.locator("pre")).to_have_text(json.dumps(dead_body, indent=2))

    log.expect_http(400, rf"/api/{queue}/config$")
    page.route(f"**/api/{queue}/config", lambda route: route.fulfill(status=400, json={"error": refusal})
               if route.request.method == "PUT" else route.continue_())
    settings = region(page, "Settings")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_have_text(refusal)
    expect(settings.get_by_role("alert")).to_be_visible()
    assert_nothing_injected(page)


def test_markup_in_subscriptions_and_links_is_shown_as_text(session, names):
    """A push URL and filter policies holding markup on the topics page, and a link whose topic
    name is markup: each shown verbatim, none parsed. A push URL has no spaces (the server refuses
    them), hence `<svg/onload=...>`; a public IP address needs no PUSH_ALLOWED_NETWORKS."""
    page, log = session
    topic = names("hostile")
    url = "https://93.184.215.14/hook/<svg/onload=window.__pwned.push(1)>?next=</td><img/src=x/onerror=window.__pwned.push(2)>"
    push_filter = {"note": ['<img src=x onerror="window.__pwned.push(3)">', {"prefix": "</td></tr><script>window.__pwned.push(4)</script>"}]}
    audit_filter = {"<svg onload=window.__pwned.push(5)>": [{"exists": True}]}
    link = "<img src=x onerror=window.__pwned.push(6)>"
    push_queue, audit_queue = f"{topic}-hook-push", f"{topic}-audit"
    made = ok("PUT", f"/api/topics/{topic}/subscriptions/hook",
              {"push": {"url": url, "secret": uuid.uuid4().hex}, "filter": push_filter})
    assert made["push"]["url"] == url and made["queue"] == push_queue
    ok("PUT", f"/api/topics/{topic}/subscriptions/audit", {"queue": audit_queue, "filter": audit_filter})

    page.add_init_script(PWNED_INIT)
    sign_in(page, log, f"#/topics/{topic}")
    rows = page.locator("tbody tr")
    push_row = rows.filter(has=page.get_by_role("link", name=push_queue, exact=True))
    audit_row = rows.filter(has=page.get_by_role("link", name=audit_queue, exact=True))
    expect(push_row.locator("[data-col=push]")).to_have_text(url)
    expect(push_row.locator("[data-col=push]")).to_be_visible()
    # JSON.stringify's compact form: what the column shows.
    expect(push_row.locator("[data-col=filter]")).to_have_text(json.dumps(push_filter, separators=(",", ":")))
    expect(audit_row.locator("[data-col=filter]")).to_have_text(json.dumps(audit_filter, separators=(",", ":")))
    assert_nothing_injected(page)

    # A link someone sent: the name in it is echoed by the page that says it is not a name.
    page.goto(f"{BASE}/ui/#/topics/{urllib.parse.quote(link)}")
    said = page.locator("main p").filter(has_text="is not a topic name")
    expect(said).to_contain_text(f"“{link}” is not a topic name")
    expect(said).to_be_visible()
    assert_nothing_injected(page)


@pytest.mark.skipif(not SHOTS, reason="CONSOLE_SCREENSHOTS is not set")
def test_screenshots(browser, names):
    """The documentation's pictures: a small shop's queues with some traffic, and a topic."""
    shop = names("shop")
    orders, emails, events = f"{shop}-orders", f"{shop}-emails", f"{shop}-events"
    ok("PUT", f"/api/{orders}/config", {"maxReceiveCount": 3, "visibilityTimeoutMs": 20000})
    ok("PUT", f"/api/topics/{shop}/subscriptions/emails", {"queue": emails})
    ok("PUT", f"/api/topics/{shop}/subscriptions/big-orders", {"queue": events, "filter": {"total": [{"numeric": [">=", 100]}]}})
    # Some seconds of traffic, so that the one-second samples draw lines.
    for second in range(8):
        for n in range(3 + second % 4):
            send(orders, {"order": second * 10 + n, "total": 20 * n + 5, "items": ["tea", "cups"]})
            ok("POST", f"/api/topics/{shop}", {"customer": f"c{n}", "total": 60 * n})
        for _ in range(2):
            status, headers, _ = http("GET", f"/api/{orders}?timeout=0&visibility=")
            if status == 200 and second % 3:
                ok("DELETE", f"/api/{orders}/messages/{headers['Skiff-Receipt']}")
            elif status == 200:
                ok("POST", f"/api/{orders}/messages/{headers['Skiff-Receipt']}/nack?delay=0", {"reason": "payment service timed out"})
        time.sleep(1)

    shots = [("console-login.png", WIDE, None), ("console-overview.png", WIDE, "#/"),
             ("console-queue.png", WIDE, f"#/queues/{orders}"), ("console-topics.png", WIDE, f"#/topics/{shop}"),
             ("console-mobile.png", NARROW, f"#/queues/{orders}")]
    for picture, viewport, route in shots:
        context, page, log = open_page(browser, viewport)
        try:
            if route is None:  # the login form, before any key
                log.expect_http(401, r".")
                page.goto(f"{BASE}/ui/")
                expect(page.get_by_label("API key")).to_be_focused()
            else:
                sign_in(page, log, route)
            if route == "#/":
                page.get_by_label("Filter queues").fill(shop)
                expect(queue_row(page, orders).locator("[data-col=oldest]")).not_to_have_text("—")
            elif route and route.startswith("#/queues/"):
                expect(page.locator("figure.chart svg path.series").first).to_be_visible()
            elif route:
                expect(page.locator("tbody tr [data-col=matched]").first).not_to_have_text("0")
            page.evaluate("document.activeElement.blur()")
            page.mouse.move(0, 0)
            shot(page, picture)
            assert not log.problems, log.problems
        finally:
            context.close()
