"""N10: notice templates load per locale and are checked when loaded, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from statemachine import TemplateError, Templates
from statemachine.spec import bundled_path
from statemachine.templates import KINDS, Phrasebook

GOOD = """
locale = "en"
[words]
succeeded = "was collected"
failed = "could not be collected"
reversed = "was returned"
no_amount = "your payment"
[succeeded]
text = "Paid ${amount} for ${loan_ref} on ${date}."
[failed]
text = "Not paid: ${amount}, attempt ${attempt}."
[reversed]
text = "Returned: ${amount}."
[correction]
text = "Correction: not ${before} but ${after}."
"""


def write(tmp_path: Path, text: str, name: str = "en.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_bundled_templates_cover_every_kind_in_en_and_zh_cn() -> None:
    templates = Templates.default()
    assert templates.locales == ("en", "zh-CN")
    assert templates.default_locale == "en"
    for locale in templates.locales:
        assert sorted(templates.books[locale].templates) == sorted(KINDS)
    zh = templates.books["zh-CN"]
    assert zh.time_zone == "Asia/Shanghai"
    assert [zh.templates[kind].template_id for kind in KINDS] == [
        "SMS_100001",
        "SMS_100002",
        "SMS_100003",
        "SMS_100004",
    ]
    assert zh.templates["correction"].names == ("loan_ref", "amount", "before", "after", "date")


def test_a_folder_loads_one_locale_per_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, GOOD.replace('locale = "en"', 'locale = "en-GB"'), "en-GB.toml")
    templates = Templates.load(tmp_path)
    assert templates.locales == ("en", "en-GB")
    assert templates.books["en"].templates["failed"].names == ("amount", "attempt")


@pytest.mark.parametrize(
    ("asked", "found"),
    [("zh-CN", "zh-CN"), ("zh_cn", "zh-CN"), ("zh", "zh-CN"), ("zh-Hans-CN", "zh-CN"),
     ("en-GB", "en"), ("fr-FR", "en"), (None, "en"), ("", "en")],
)  # fmt: skip
def test_a_customer_locale_picks_the_tag_then_the_language_then_the_default(
    asked: str | None, found: str
) -> None:
    assert Templates.default().phrasebook(asked).locale == found


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("${loan_ref} on", "${loan} on"), "unknown variable ${loan}; a succeeded template may use"),
        (("not ${before}", "not ${before} ${nope}"), "unknown variable ${nope}"),
        (("Returned: ${amount}.", "Returned ${before}."), "unknown variable ${before}"),
        (("Paid ${amount}", "Paid $"), "malformed variable; write ${name}"),
        (("Paid ${amount}", "Paid ${amount"), "malformed variable"),
        (('[reversed]\ntext = "Returned: ${amount}."', ""), "no template for notice kind 'reversed'"),
        (('text = "Returned: ${amount}."', 'text = "Returned."\nsms = 1'), "[reversed]: unknown key 'sms'"),
        (('text = "Returned: ${amount}."', 'text = ""'), "[reversed] needs text"),
        (('text = "Returned: ${amount}."', 'text = "R."\ntemplate_id = 7'), "template_id must be"),
        (('locale = "en"', 'locale = "xx-Nowhere"'), "`locale` 'xx-Nowhere' is not a locale"),
        (('locale = "en"', 'locale = "en"\ntime_zone = "Mars/Base"'), "`time_zone` 'Mars/Base'"),
        (('locale = "en"', 'locale = "en"\ncolour = "red"'), "unknown key 'colour'"),
        (('no_amount = "your payment"', ""), "[words] needs no_amount"),
        (('no_amount = "your payment"', 'no_amount = "x"\nmaybe = "y"'), "[words] has unknown key"),
        (("[words]", "[wording]"), "unknown key 'wording'"),
        (("[succeeded]", "[succeeded"), "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_template_file_is_refused_naming_the_file_and_the_fix(
    tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(TemplateError) as caught:
        Templates.load(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")
    assert says in str(caught.value)


def test_a_default_locale_without_a_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace('locale = "en"', 'locale = "zh-CN"'), "zh-CN.toml")
    with pytest.raises(TemplateError, match="default locale 'en' has no template file"):
        Templates.load(tmp_path)
    assert Templates.load(tmp_path, default_locale="zh-CN").locales == ("zh-CN",)


def test_a_folder_without_templates_and_a_locale_twice_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no template files"):
        Templates.load(tmp_path)
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(TemplateError, match=r"b\.toml: locale 'en' is also in .*a\.toml"):
        Templates.load(tmp_path)


def test_a_file_without_a_locale_key_is_named_by_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('locale = "en"', ""), "zh-CN.toml")
    assert Phrasebook.load(path).locale == "zh-CN"
    with pytest.raises(TemplateError, match="no such template file"):
        Phrasebook.load(tmp_path / "missing.toml")


def test_the_templates_ship_beside_the_spec() -> None:
    assert bundled_path("templates", "zh-CN.toml").is_file()
