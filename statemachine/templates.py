"""Notice templates (N10): the customer's text per notice kind and locale, checked at load.

Templates live in ``specs/templates/`` (``en.toml`` and ``zh-CN.toml`` are bundled), one file
per locale, one table per notice kind (succeeded, failed, reversed, correction) with the
``text`` and an optional provider ``template_id`` (providers that send an approved template by
id and parameters, such as Aliyun's ``SMS_123456``). Texts use ``${name}`` variables from a
fixed set; an unknown variable, a missing kind or a malformed file raises
:class:`~statemachine.errors.TemplateError` naming the file and the fix. Rendering is
``messages.py``'s job.

>>> book = Templates.default().phrasebook("zh-CN")
>>> book.templates["succeeded"].template_id, book.templates["correction"].names[-2:]
('SMS_100001', ('after', 'date'))
"""

from __future__ import annotations

import functools
import string
import tomllib
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs
from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from .errors import TemplateError
from .events import FAILED, REVERSED, SUCCEEDED
from .records import CORRECTION
from .spec import bundled_path

KINDS: Final = (SUCCEEDED, FAILED, REVERSED, CORRECTION)
VARIABLES: Final = frozenset({"amount", "loan_ref", "date", "attempt", "outcome"})
CORRECTION_VARIABLES: Final = VARIABLES | {"before", "after"}
WORDS: Final = (SUCCEEDED, FAILED, REVERSED, "no_amount")
_TOP_LEVEL: Final = frozenset({"locale", "time_zone", "date_format", "words", *KINDS})
_TEMPLATE_KEYS: Final = frozenset({"text", "template_id"})


@attrs.frozen
class Template:
    """One notice kind's text in one locale, and the provider's id for it, if any."""

    kind: str
    text: str
    template_id: str | None
    names: tuple[str, ...]  # the variables it uses, in order: a provider's parameters

    def render(self, values: Mapping[str, str]) -> str:
        """The text with its variables filled in (every one was checked at load)."""
        return string.Template(self.text).substitute(values)


@attrs.frozen
class Phrasebook:
    """The templates of one locale, its outcome words and its defaults; one file."""

    locale: str
    templates: Mapping[str, Template]
    words: Mapping[str, str]
    time_zone: str
    date_format: str
    origin: str

    @classmethod
    def load(cls, path: str | Path) -> Phrasebook:
        """Load and check one template file (TOML); problems raise :class:`TemplateError`
        naming the file and the fix."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TemplateError(f"{path}: no such template file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: not valid TOML in UTF-8 ({exc})") from None
        return cls.from_dict(data, origin=str(path), locale=path.stem)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "<dict>", locale: str = "en"
                  ) -> Phrasebook:  # fmt: skip
        """Check template data: every kind present, every variable known, the locale, zone
        and date format usable. ``locale`` is the default for a file without ``locale``."""

        def fail(message: str) -> TemplateError:
            return TemplateError(f"{origin}: {message}")

        unknown = sorted(set(data) - _TOP_LEVEL)
        if unknown:
            raise fail(
                f"unknown key {unknown[0]!r}; expected keys: {', '.join(sorted(_TOP_LEVEL))}"
            )
        tag = data.get("locale", locale)
        if not isinstance(tag, str) or babel_locale(tag) is None:
            raise fail(f"`locale` {tag!r} is not a locale Babel knows; write a tag such as 'zh-CN'")
        zone = data.get("time_zone", "UTC")
        if not isinstance(zone, str) or zone_info(zone) is None:
            raise fail(f"`time_zone` {zone!r} is not an IANA time zone such as 'Asia/Shanghai'")
        pattern = data.get("date_format", "long")
        try:
            format_date(date(2026, 3, 5), str(pattern), locale=babel_locale(tag))
        except (ValueError, KeyError, TypeError) as exc:
            raise fail(f"`date_format` {pattern!r} is not a Babel date format ({exc})") from None
        words = data.get("words")
        if not isinstance(words, Mapping):
            raise fail(f"no [words] table; add one with the keys {', '.join(WORDS)}")
        for key in [*WORDS, *words]:
            if key not in WORDS:
                raise fail(f"[words] has unknown key {key!r}; expected {', '.join(WORDS)}")
            if not isinstance(words.get(key), str):
                raise fail(f'[words] needs {key} = "...", the words for it in this locale')
        templates = {kind: _template(kind, data.get(kind), fail) for kind in KINDS}
        return cls(tag, templates, dict(words), zone, str(pattern), origin)


def _template(kind: str, raw: object, fail: Callable[[str], TemplateError]) -> Template:
    if raw is None:
        raise fail(f'no template for notice kind {kind!r}; add a [{kind}] table with text = "..."')
    if not isinstance(raw, Mapping):
        raise fail(f'`{kind}` must be a table with text = "..."')
    extra = sorted(set(raw) - _TEMPLATE_KEYS)
    if extra:
        raise fail(f"[{kind}]: unknown key {extra[0]!r}; expected text and template_id")
    text, template_id = raw.get("text"), raw.get("template_id")
    if not isinstance(text, str) or not text.strip():
        raise fail(f'[{kind}] needs text = "...", the message')
    if template_id is not None and (not isinstance(template_id, str) or not template_id):
        raise fail(f"[{kind}]: template_id must be the provider's id as text, e.g. 'SMS_123456'")
    parsed = string.Template(text)
    if not parsed.is_valid():
        raise fail(
            f"[{kind}]: text has a malformed variable; write ${{name}} or $name, and $$ for a "
            "literal dollar sign"
        )
    allowed = CORRECTION_VARIABLES if kind == CORRECTION else VARIABLES
    names = tuple(parsed.get_identifiers())
    for name in names:
        if name not in allowed:
            raise fail(
                f"[{kind}]: unknown variable ${{{name}}}; a {kind} template may use "
                + ", ".join(f"${{{n}}}" for n in sorted(allowed))
            )
    return Template(kind, text, template_id, names)


@attrs.frozen
class Templates:
    """The notice templates of every locale; build with :meth:`load` or :meth:`default`.

    A customer's locale picks its file: the exact tag, else one of the same language, else
    ``default_locale``.

    >>> Templates.default().locales
    ('en', 'zh-CN')
    """

    books: Mapping[str, Phrasebook]
    default_locale: str = "en"

    def __attrs_post_init__(self) -> None:
        if self.default_locale not in self.books:
            raise TemplateError(
                f"default locale {self.default_locale!r} has no template file; "
                f"loaded: {', '.join(self.books) or 'none'}"
            )

    @classmethod
    @functools.cache
    def default(cls) -> Templates:
        """The bundled ``specs/templates/``, loaded once per process; default locale en."""
        return cls.load(bundled_path("templates"))

    @classmethod
    def load(cls, path: str | Path, default_locale: str = "en") -> Templates:
        """Load every ``*.toml`` of a folder (or one file); each file is one locale, checked
        as :meth:`Phrasebook.load` says."""
        path = Path(path)
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        if not files:
            raise TemplateError(f"{path}: no template files; add one *.toml per locale")
        books: dict[str, Phrasebook] = {}
        for file in files:
            book = Phrasebook.load(file)
            if book.locale in books:
                raise TemplateError(
                    f"{file}: locale {book.locale!r} is also in {books[book.locale].origin}"
                )
            books[book.locale] = book
        return cls(books, default_locale)

    @property
    def locales(self) -> tuple[str, ...]:
        """The locales there are templates for, sorted."""
        return tuple(sorted(self.books))

    def phrasebook(self, locale: str | None) -> Phrasebook:
        """The file for a customer's locale: the exact tag, the language, else the default."""
        if locale:
            wanted = locale.replace("_", "-").lower()
            by_tag = {tag.lower(): book for tag, book in self.books.items()}
            if wanted in by_tag:
                return by_tag[wanted]
            language = wanted.split("-")[0]
            for tag in sorted(by_tag):
                if tag.split("-")[0] == language:
                    return by_tag[tag]
        return self.books[self.default_locale]


@functools.lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale | None:
    """The Babel locale for a tag such as ``zh-CN``, or None if Babel knows none."""
    if not tag:
        return None
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo | None:
    """The IANA time zone of this name, or None if there is none."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # not a zone name, or no such zone
        return None
