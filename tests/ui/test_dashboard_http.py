"""The dashboard used as a person uses it, over real HTTP against gunicorn, a Celery worker and
beat: follow links from /ui, submit the forms with the CSRF value the page carries, and see the
effect through the API."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

from tests.support.html import Visitor
from tests.support.http_target import Reply
from tests.support.waiting import wait_until
from tests.ui.conftest import TOKEN

REQUEST_LINK = re.compile(r"/ui/requests/[0-9A-Z]{26}$")


def api(base_url: str, method: str, path: str, token: str | None = None, headers: dict | None = None,
        **kwargs) -> requests.Response:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return requests.request(method, base_url + path, headers=headers, timeout=10, **kwargs)


def create(base_url: str, **body) -> str:
    response = api(base_url, "POST", "/v1/requests", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def status(base_url: str, request_id: str) -> str:
    return api(base_url, "GET", f"/v1/requests/{request_id}/status").json()["status"]


def wait_status(base_url: str, request_id: str, wanted: str) -> None:
    wait_until(lambda: status(base_url, request_id) == wanted, 20, 0.05)


def test_every_link_from_the_overview_answers(base_url, target):
    create(base_url, url=target.url + "/crawl", delay=3600)
    api(base_url, "PUT", "/v1/queues/ui-crawl", json={})
    api(base_url, "PUT", "/v1/batches/ui-crawl", json={"endpoint": target.url + "/crawl-batch"})
    visitor = Visitor(base_url)
    todo, seen = ["/ui"], set()
    while todo and len(seen) < 150:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        page = visitor.open(url)
        for link in page.links:
            parts = urlsplit(link.href)
            if parts.netloc == urlsplit(base_url).netloc and parts.path.startswith("/ui"):
                todo.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    paths = {urlsplit(url).path for url in seen}
    assert {"/ui", "/ui/requests", "/ui/queues", "/ui/batches", "/ui/workers",
            "/ui/queues/ui-crawl", "/ui/batches/ui-crawl"} <= paths
    assert any(REQUEST_LINK.search(path) for path in paths)
    assert "/ui/requests?status=scheduled" in seen
    css = visitor.session.get(base_url + "/ui/static/ui.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    for missing in ("/ui/nothing-here", "/ui/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/ui/queues/none",
                    "/ui/batches/none"):
        page = visitor.open(missing, status=404)
        assert "404" in page.text and page.link("Back to the overview")


def test_overview_shows_counts_workers_and_the_chart(base_url, target):
    request_id = create(base_url, url=target.url + "/overview")
    wait_status(base_url, request_id, "succeeded")
    page = Visitor(base_url).open("/ui")
    assert re.search(r"\d+ succeeded", page.text) and "Finished per minute" in page.text
    assert "celery@" in page.text or "worker@" in page.text  # a live worker is listed
    html = requests.get(base_url + "/ui", timeout=10).text
    assert html.count('<rect class="bar"') == 60 and "<script" not in html
    assert page.link("Schedules")  # the overview's schedules panel and the nav lead to the schedules page
    assert 'http-equiv="refresh"' not in html
    refreshing = Visitor(base_url).open(page.link("every 15 s").href)
    assert '<meta http-equiv="refresh" content="15">' in requests.get(refreshing.url, timeout=10).text
    assert 'http-equiv="refresh"' not in requests.get(base_url + "/ui?refresh=1", timeout=10).text


def test_cancel_retry_and_run_now_from_the_request_page(base_url, target):
    target.reply("/ui-retry", Reply(200, b"retried fine"))
    request_id = create(base_url, url=target.url + "/ui-retry", delay=3600)
    visitor = Visitor(base_url)
    listing = visitor.open(visitor.open("/ui").link("scheduled").href)
    page = visitor.open(listing.link(request_id).href)
    assert [form.buttons for form in page.forms if form.action.endswith(("/cancel", "/run", "/retry"))] == [
        ["Cancel"], ["Run now"]]

    page = visitor.submit(page.form("Cancel"))
    assert "Canceled." in page.text and status(base_url, request_id) == "canceled"
    assert not [form for form in page.forms if "Cancel" in form.buttons]

    page = visitor.submit(page.form("Retry"))
    assert "Queued again" in page.text
    wait_status(base_url, request_id, "succeeded")
    assert len(target.requests_to("/ui-retry")) == 1

    later = create(base_url, url=target.url + "/ui-run", delay=3600)
    page = visitor.submit(visitor.open(f"/ui/requests/{later}").form("Run now"))
    assert "Handed to the workers" in page.text
    wait_status(base_url, later, "succeeded")
    page = visitor.open(f"/ui/requests/{later}")
    assert "200 OK" in page.text and "attempt 1" in page.text and page.forms == []


def test_a_long_response_body_is_cut_on_the_page_with_a_note(base_url, target):
    target.reply("/ui-long", Reply(200, b"y" * 100_000, {"Content-Type": "text/plain"}))
    request_id = create(base_url, url=target.url + "/ui-long")
    wait_status(base_url, request_id, "succeeded")
    html = requests.get(f"{base_url}/ui/requests/{request_id}", timeout=10).text
    assert "y" * 16_384 in html and "y" * 16_385 not in html
    assert "Showing the first 16,384 of 100,000 characters." in html


def test_user_data_is_escaped_on_every_page(base_url, target):
    evil = "<script>alert(1)</script>"
    request_id = create(base_url, url=target.url + "/esc?q=<b>", delay=3600, headers={"X-Evil": evil},
                        json={"k": "<img src=x onerror=alert(1)>"})
    api(base_url, "PUT", "/v1/queues/ui-esc", json={"max_receives": 1, "visibility_timeout": 0})
    api(base_url, "POST", "/v1/queues/ui-esc/messages", data=evil, headers={"Content-Type": "text/plain"})
    make_dead(base_url, "ui-esc")
    for path in (f"/ui/requests/{request_id}", "/ui/requests", "/ui/queues/ui-esc"):
        html = requests.get(base_url + path, timeout=10).text
        assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in requests.get(base_url + "/ui/queues/ui-esc", timeout=10).text


def make_dead(base_url: str, queue: str) -> None:
    """Receive the queue's message until it has been received more than max_receives times."""
    def dead() -> bool:
        api(base_url, "POST", f"/v1/queues/{queue}/messages/receive", json={"max": 10})
        return api(base_url, "GET", f"/v1/queues/{queue}").json()["dead"] >= 1
    wait_until(dead, 10, 0.01)


def test_dead_letters_are_shown_and_redriven(base_url):
    api(base_url, "PUT", "/v1/queues/ui-dlq", json={"max_receives": 1, "visibility_timeout": 0})
    api(base_url, "POST", "/v1/queues/ui-dlq/messages", json={"order": 42})
    make_dead(base_url, "ui-dlq")
    visitor = Visitor(base_url)
    page = visitor.open(visitor.open("/ui/queues").link("ui-dlq").href)
    assert "Dead letters 1" in page.text and '"order": 42' in page.text
    page = visitor.submit(page.form("Redrive"))
    assert "Sent again: 1 moved." in page.text and "Dead letters 0" in page.text
    queue = api(base_url, "GET", "/v1/queues/ui-dlq").json()
    assert (queue["dead"], queue["visible"]) == (0, 1)


def test_schedules_are_listed_paused_resumed_and_run_from_their_page(base_url, target):
    body = {"every": 3600, "target": {"request": {"url": target.url + "/sched", "delay": 3600}}}
    assert api(base_url, "PUT", "/v1/schedules/ui-hourly", json=body).status_code == 201
    visitor = Visitor(base_url)
    page = visitor.open(visitor.open("/ui").link("Schedules").href)
    assert "ui-hourly" in page.text and "every 1 h" in page.text and f"POST {target.url}/sched" in page.text
    page = visitor.submit(page.form("Pause"))
    assert "Paused" in page.text and api(base_url, "GET", "/v1/schedules/ui-hourly").json()["paused"] is True
    page = visitor.submit(page.form("Resume"))
    assert "Resumed" in page.text and api(base_url, "GET", "/v1/schedules/ui-hourly").json()["paused"] is False
    page = visitor.submit(page.form("Run now"))
    schedule = api(base_url, "GET", "/v1/schedules/ui-hourly").json()
    assert "Run now, outside its timetable." in page.text and schedule["runs"] == 1
    runs = visitor.open(page.link("its requests").href)
    assert schedule["last_run_id"] in runs.text and "made by schedule ui-hourly" in runs.text


def test_dead_batches_are_shown_and_redriven(base_url, target):
    target.reply("/ui-batch", Reply(400, b"no"))
    api(base_url, "PUT", "/v1/batches/ui-batch", json={"endpoint": target.url + "/ui-batch", "max_records": 1,
                                                        "retry": {"max_attempts": 1}})
    api(base_url, "POST", "/v1/batches/ui-batch/records", json={"user": 7})
    wait_until(lambda: api(base_url, "GET", "/v1/batches/ui-batch").json()["dead_batches"] == 1, 20, 0.05)
    visitor = Visitor(base_url)
    page = visitor.open(visitor.open("/ui/batches").link("ui-batch").href)
    assert "Dead batches 1" in page.text and '"user": 7' in page.text and "400" in page.text
    page = visitor.submit(page.form("Redrive"))
    assert "Sent again: 1 moved." in page.text
    wait_until(lambda: api(base_url, "GET", "/v1/batches/ui-batch").json()["sent_batches"] == 1, 20, 0.05)
    first, second = [r.body for r in target.requests_to("/ui-batch")]
    assert first == second and b'"user"' in first


def test_requests_list_pages_with_the_cursor(base_url, target):
    ids = {create(base_url, url=target.url + "/paged", delay=7200) for _ in range(55)}
    visitor = Visitor(base_url)
    first = visitor.open("/ui/requests?status=scheduled")
    first_ids = [link.href.rsplit("/", 1)[1] for link in first.links if REQUEST_LINK.search(link.href)]
    assert len(first_ids) == 50
    second = visitor.open(first.link("Older").href)
    assert second.link("Newest")
    second_ids = [link.href.rsplit("/", 1)[1] for link in second.links if REQUEST_LINK.search(link.href)]
    assert not set(first_ids) & set(second_ids) and ids <= set(first_ids) | set(second_ids)
    assert first_ids == sorted(first_ids, reverse=True) and second_ids == sorted(second_ids, reverse=True)
    found = visitor.submit(first.forms[0], id=second_ids[0])
    assert found.url.endswith(f"/ui/requests/{second_ids[0]}") and second_ids[0] in found.text
    assert "No request 01ARZ3NDEKTSV4RRFFQ69G5FAV" in visitor.submit(first.forms[0], status=404,
                                                                      id="01ARZ3NDEKTSV4RRFFQ69G5FAV").text
    visitor.open("/ui/requests?status=nonsense", status=400)
    visitor.open("/ui/requests?cursor=not-a-cursor", status=422)


def test_a_post_without_the_pages_csrf_value_is_refused(base_url, target):
    request_id = create(base_url, url=target.url + "/csrf", delay=3600)
    visitor = Visitor(base_url)
    form = visitor.open(f"/ui/requests/{request_id}").form("Cancel")
    value = form.fields["csrf"]
    assert len(value) >= 32
    assert visitor.session.post(form.action, data={}, timeout=10).status_code == 403
    assert visitor.session.post(form.action, data={"csrf": value[:-1] + "x"}, timeout=10).status_code == 403
    cross_site = visitor.session.post(form.action, data={"csrf": value}, headers={"Origin": "http://evil.example"},
                                      timeout=10)
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    # Another site's page cannot make the browser send the SameSite=Strict cookie: no cookie, refused.
    assert requests.post(form.action, data={"csrf": value}, timeout=10).status_code == 403
    assert status(base_url, request_id) == "scheduled"
    assert "Canceled." in visitor.submit(form).text and status(base_url, request_id) == "canceled"


def test_with_tokens_the_dashboard_asks_for_a_login_and_keeps_a_strict_cookie(locked_url):
    visitor = Visitor(locked_url)
    redirected = visitor.session.get(locked_url + "/ui/requests?status=failed", allow_redirects=False, timeout=10)
    assert redirected.status_code == 303 and redirected.headers["Location"].startswith("/ui/login?next=")
    login = visitor.open("/ui/requests?status=failed")
    assert urlsplit(login.url).path == "/ui/login" and "token" in login.form("Log in").fields

    wrong = visitor.submit(login.form("Log in"), status=401, token="not-the-token")
    assert "not one of the configured tokens" in wrong.text
    assert "htq_ui_session" not in visitor.session.cookies

    answer = visitor.session.post(login.url, data={**login.form("Log in").fields, "token": TOKEN},
                                  allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/requests?status=failed"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("htq_ui_session=") and TOKEN not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # plain http here; see the https test below
    page = visitor.open("/ui/requests?status=failed")
    assert "Requests · failed" in page.text

    # The dashboard's cookie is not a key to the API.
    assert visitor.session.get(locked_url + "/v1/requests", timeout=10).status_code == 401
    assert api(locked_url, "GET", "/v1/requests", token=TOKEN).status_code == 200

    page = visitor.submit(page.form("Log out"))
    assert urlsplit(page.url).path == "/ui/login" and "Logged out." in page.text
    assert visitor.session.get(locked_url + "/ui", allow_redirects=False, timeout=10).status_code == 303


def test_with_tokens_forms_need_the_csrf_value_and_a_session(locked_url, target):
    visitor = Visitor(locked_url)
    login = visitor.open("/ui/login")
    refused = visitor.session.post(login.url, data={"token": TOKEN}, timeout=10)
    assert refused.status_code == 403 and "htq_ui_session" not in visitor.session.cookies
    visitor.submit(login.form("Log in"), token=TOKEN)
    response = api(locked_url, "POST", "/v1/requests", token=TOKEN, json={"url": target.url + "/x", "delay": 3600})
    request_id = response.json()["id"]
    form = visitor.open(f"/ui/requests/{request_id}").form("Cancel")
    assert visitor.session.post(form.action, data={}, timeout=10).status_code == 403
    stranger = requests.Session()  # the csrf value, without the session
    stranger.cookies.set("htq_ui_csrf", form.fields["csrf"], path="/ui")
    assert stranger.post(form.action, data=form.fields, allow_redirects=False, timeout=10).status_code == 303
    assert api(locked_url, "GET", f"/v1/requests/{request_id}/status", token=TOKEN).json()["status"] == "scheduled"
    assert "Canceled." in visitor.submit(form).text


def test_with_tokens_login_never_sends_the_browser_elsewhere(locked_url):
    visitor = Visitor(locked_url)
    for next_path in ("https://evil.example/", "//evil.example/ui", "/v1/requests"):
        form = visitor.open(f"/ui/login?next={requests.utils.quote(next_path)}").form("Log in")
        answer = visitor.session.post(form.action, data={**form.fields, "token": TOKEN}, allow_redirects=False,
                                      timeout=10)
        assert answer.headers["Location"] == "/ui"


def test_over_https_the_cookies_are_secure(locked_url):
    """Behind a proxy that ends TLS and says so with X-Forwarded-Proto."""
    https = {"X-Forwarded-Proto": "https"}
    login = requests.get(locked_url + "/ui/login", headers=https, timeout=10)
    assert "Secure" in login.headers["Set-Cookie"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    # A client keeps Secure cookies for https: sent here by hand over the test's plain connection.
    answer = requests.post(locked_url + "/ui/login", data={"csrf": csrf, "token": TOKEN},
                           headers={**https, "Cookie": f"htq_ui_csrf={csrf}"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and "Secure" in answer.headers["Set-Cookie"]


def test_a_read_token_shows_the_pages_but_not_their_actions_and_its_revocation_ends_the_session(locked_url, target):
    made = api(locked_url, "POST", "/v1/tokens", token=TOKEN, json={"name": "viewer", "scopes": ["read"]}).json()
    response = api(locked_url, "POST", "/v1/requests", token=TOKEN, json={"url": target.url + "/x", "delay": 3600})
    request_id = response.json()["id"]
    visitor = Visitor(locked_url)
    visitor.submit(visitor.open("/ui/login").form("Log in"), token=made["token"])
    assert made["token"] not in visitor.session.cookies["htq_ui_session"]
    form = visitor.open(f"/ui/requests/{request_id}").form("Cancel")
    refused = visitor.session.post(form.action, data=form.fields, timeout=10)
    assert refused.status_code == 403 and "lacks the" in refused.text and "admin" in refused.text
    assert api(locked_url, "GET", f"/v1/requests/{request_id}/status", token=TOKEN).json()["status"] == "scheduled"

    assert api(locked_url, "DELETE", f"/v1/tokens/{made['id']}", token=TOKEN).status_code == 204
    answer = visitor.session.get(locked_url + "/ui", allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/ui/login")
