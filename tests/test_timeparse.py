"""Dates users type (cli.md: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][±HH:MM] and unix seconds)."""

from __future__ import annotations

from datetime import timezone

import pytest

from scrobbler_cli.errors import UsageError
from scrobbler_cli.timeparse import MAX_TIME, parse_date, zone


@pytest.mark.parametrize(("text", "expected"), [
    ("1714600000", 1714600000),
    (" 1714600000 ", 1714600000),
    ("0", 0),  # the epoch: any number of digits is unix seconds
    ("59", 59),
    ("86400", 86400),
    ("2024-05-01", 1714521600),
    ("2024-05-01T21:46:40Z", 1714600000),
    ("2024-05-01T23:46:40+02:00", 1714600000),
    ("2024-05-01T21:46", 1714599960),
])
def test_dates_and_unix_seconds(text: str, expected: int) -> None:
    assert parse_date(text, timezone.utc) == expected


def test_a_date_without_an_offset_is_read_in_the_zone_given() -> None:
    assert parse_date("2024-05-01", zone("Europe/Berlin")) == 1714521600 - 7200


@pytest.mark.parametrize("text", ["2024", "1970", "9999"])
def test_a_year_alone_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(UsageError, match="could be a year or unix seconds") as info:
        parse_date(text, timezone.utc)
    assert info.value.hint is not None and f"{text}-01-01" in info.value.hint


@pytest.mark.parametrize(("text", "day"), [("20231114", "2023-11-14"),
                                         ("19700101", "1970-01-01")])
def test_eight_digits_that_spell_a_date_are_refused_with_what_to_write(text: str,
                                                                       day: str) -> None:
    with pytest.raises(UsageError, match="could be a date or unix seconds") as info:
        parse_date(text, timezone.utc)
    assert info.value.hint is not None and f"write {day};" in info.value.hint


@pytest.mark.parametrize("text", ["20231399", "19691231", "12345678", "1700000000"])
def test_digits_that_spell_no_date_are_unix_seconds(text: str) -> None:
    assert parse_date(text, timezone.utc) == int(text)


@pytest.mark.parametrize("text", ["-5", str(MAX_TIME + 1), "0001-01-01", "1969-06-01",
                                  "9999-12-31T23:00-12:00"])
@pytest.mark.parametrize("tz", [timezone.utc, None], ids=["UTC", "local"])
def test_dates_out_of_range_say_which_are_accepted(text: str, tz: timezone | None) -> None:
    with pytest.raises(UsageError, match="out of range") as info:
        parse_date(text, tz)
    assert info.value.hint == "use a date between 1970 and 9999"


@pytest.mark.parametrize("text", ["last tuesday", "2024-13-01", "", "1e9"])
def test_what_is_no_date_says_what_is_accepted(text: str) -> None:
    with pytest.raises(UsageError, match="cannot read the date") as info:
        parse_date(text, timezone.utc)
    assert info.value.hint is not None and "unix seconds" in info.value.hint
