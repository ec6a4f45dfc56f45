"""Reading a page as a person (or a browser without script) uses it: its links and its forms."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)


@dataclass
class Link:
    href: str
    text: str


class Page(HTMLParser):
    """The links (href and text) and forms (action, method, named inputs, button texts) of an HTML
    page fetched from `url`, with every address made absolute."""

    def __init__(self, html: str, url: str):
        super().__init__(convert_charrefs=True)
        self.url = url
        self.links: list[Link] = []
        self.forms: list[Form] = []
        self.text_parts: list[str] = []
        self._link: Link | None = None
        self._form: Form | None = None
        self._button: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in attrs:
            self._link = Link(urljoin(self.url, attrs["href"]), "")
            self.links.append(self._link)
        elif tag == "form":
            self._form = Form(urljoin(self.url, attrs.get("action", "")), attrs.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attrs.get("name"):
            self._form.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "button" and self._form is not None:
            self._button = []

    def handle_endtag(self, tag):
        if tag == "a":
            self._link = None
        elif tag == "form":
            self._form = None
        elif tag == "button" and self._form is not None and self._button is not None:
            self._form.buttons.append("".join(self._button).strip())
            self._button = None

    def handle_data(self, data):
        self.text_parts.append(data)
        if self._link is not None:
            self._link.text += data
        if self._button is not None:
            self._button.append(data)

    @property
    def text(self) -> str:
        """The page's text, whitespace collapsed."""
        return " ".join(" ".join(self.text_parts).split())

    def link(self, text: str) -> Link:
        """The first link whose text contains `text`."""
        found = [link for link in self.links if text in " ".join(link.text.split())]
        assert found, f"no link {text!r} on {self.url}: {[link.text.strip() for link in self.links]}"
        return found[0]

    def form(self, button: str) -> Form:
        """The form of the button whose text starts with `button`."""
        found = [form for form in self.forms if any(text.startswith(button) for text in form.buttons)]
        assert found, f"no button {button!r} on {self.url}: {[form.buttons for form in self.forms]}"
        return found[0]


class Visitor:
    """A person with a browser that runs no script: a requests.Session keeping cookies, following
    links and submitting forms as they are on the page (redirects followed, as a browser does)."""

    def __init__(self, base_url: str):
        import requests

        self.base_url = base_url
        self.session = requests.Session()

    def open(self, url: str, status: int = 200) -> Page:
        response = self.session.get(urljoin(self.base_url, url), timeout=10)
        assert response.status_code == status, f"GET {url}: {response.status_code} {response.text[:500]}"
        return Page(response.text, response.url)

    def submit(self, form: Form, status: int = 200, **fields: str) -> Page:
        values = {**form.fields, **fields}
        if form.method == "get":  # a GET form's fields go in the query, as a browser sends them
            response = self.session.get(form.action, params=values, timeout=10)
        else:
            response = self.session.request(form.method, form.action, data=values, timeout=10)
        assert response.status_code == status, \
            f"{form.method} {form.action}: {response.status_code} {response.text[:500]}"
        return Page(response.text, response.url)
