"""A bad option is a clear error that names the option and the value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lakebed.world.spec import FeedSpec, WorldSpec


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_customers": -5}, "n_customers"),
        ({"n_terminals": 0}, "n_terminals"),
        ({"n_days": -1}, "n_days"),
        ({"radius": 0}, "radius"),
        ({"radius": -2.5}, "radius"),
        ({"seed": -1}, "seed"),
        ({"feed": {"currencies": ["EUR", "ABC"]}}, "unknown currency code(s) ABC"),
        ({"feed": {"currencies": []}}, "at least one currency"),
        ({"feed": {"currencies": ["EUR", "EUR"]}}, "repeat"),
        ({"feed": {"dirty": {"late": 0.5, "duplicate": 0.5}}}, "must leave clean rows"),
        ({"feed": {"dirty": {"late": -0.1}}}, "late"),
        ({"feed": {"chargeback_delay_min_days": 5, "chargeback_delay_max_days": 2}}, "below"),
        ({"n_terminals": 1}, "terminals compromised per day"),
        ({"n_days": 10, "feed": {"schema_change_day": 10}}, "outside the 10-day world"),
        ({"customers": 10}, "Extra inputs"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        WorldSpec.model_validate(options)
    assert message in str(error.value)


def test_currencies_accept_a_comma_separated_string() -> None:
    assert FeedSpec.model_validate({"currencies": "eur, gbp"}).currencies == ("EUR", "GBP")


def test_defaults_are_the_handbooks() -> None:
    spec = WorldSpec()
    assert (spec.n_customers, spec.n_terminals, spec.n_days, spec.radius) == (5000, 10000, 183, 5)
    assert spec.start_date.isoformat() == "2018-04-01"
    assert spec.schema_change_day == 91


def test_fingerprint_follows_every_option() -> None:
    assert WorldSpec().fingerprint() == WorldSpec().fingerprint()
    assert WorldSpec().fingerprint() != WorldSpec(seed=1).fingerprint()
    changed = WorldSpec(feed=FeedSpec(late_max_days=2))
    assert WorldSpec().fingerprint() != changed.fingerprint()
