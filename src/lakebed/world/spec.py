"""What a payments world is made of: every option of the simulator, validated in one place.

The defaults are the *Reproducible Machine Learning for Credit Card Fraud Detection*
handbook's (5,000 customers, 10,000 terminals, 183 days from 2018-04-01, r = 5), so that a
model trained on the default world can be held against the handbook's tables. A spec is
immutable and hashable into a fingerprint: two runs with the same fingerprint produce
byte-identical files.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ISO 4217 active codes. A feed currency outside this set is a configuration mistake, and
# the dirty-data generator relies on this list to produce codes that are truly unknown.
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)

# Bump when the simulator's output changes for the same spec, so old worlds are not reused.
OUTPUT_VERSION = 3

Rate = Annotated[float, Field(ge=0.0, le=0.5)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FraudSpec(_Frozen):
    """The handbook's three fraud scenarios, with its parameters as defaults."""

    amount_threshold: float = Field(220.0, gt=0, description="scenario 1: amount above is fraud")
    compromised_terminals_per_day: int = Field(2, ge=0)
    terminal_window_days: int = Field(28, ge=1)
    compromised_customers_per_day: int = Field(3, ge=0)
    customer_window_days: int = Field(14, ge=1)
    customer_amount_multiplier: int = Field(5, ge=1)


class DirtyRates(_Frozen):
    """Share of transaction lines that arrive dirty, per kind (each line has at most one)."""

    duplicate: Rate = 0.002
    late: Rate = 0.003
    truncated_json: Rate = 0.0002
    wrong_type: Rate = 0.0002
    missing_field: Rate = 0.0002
    negative_amount: Rate = 0.0002
    unknown_currency: Rate = 0.0002
    invalid_utf8: Rate = 0.0002

    @model_validator(mode="after")
    def _leave_clean_rows(self) -> DirtyRates:
        total = sum(self.as_dict().values())
        if total >= 1.0:
            raise ValueError(f"dirty rates add up to {total:.3f}; they must leave clean rows (< 1)")
        return self

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class FeedSpec(_Frozen):
    """How the payment switch delivers the world: currencies, delays, dirt, schema change."""

    currencies: tuple[str, ...] = ("EUR",)
    dirty: DirtyRates = DirtyRates()
    late_max_days: int = Field(3, ge=1, le=30)
    chargeback_delay_min_days: int = Field(1, ge=0)
    chargeback_delay_max_days: int = Field(14, ge=0)
    schema_change_day: int | None = Field(
        None, ge=0, description="first day whose events carry schema v2; None = the middle day"
    )

    @field_validator("currencies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one currency is needed, e.g. EUR")
        unknown = [code for code in value if code not in ISO_4217]
        if unknown:
            raise ValueError(
                f"unknown currency code(s) {', '.join(unknown)}: use ISO 4217 codes such as EUR"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"currencies repeat a code: {', '.join(value)}")
        return value

    @model_validator(mode="after")
    def _delay_range(self) -> FeedSpec:
        if self.chargeback_delay_max_days < self.chargeback_delay_min_days:
            raise ValueError(
                f"chargeback delay max ({self.chargeback_delay_max_days} days) is below "
                f"its min ({self.chargeback_delay_min_days} days)"
            )
        return self


class WorldSpec(_Frozen):
    """Everything that determines a world; the same spec always yields the same bytes."""

    seed: int = Field(0, ge=0)
    n_customers: int = Field(5000, gt=0)
    n_terminals: int = Field(10000, gt=0)
    n_days: int = Field(183, gt=0)
    start_date: date = date(2018, 4, 1)
    radius: float = Field(5.0, gt=0, description="a customer uses the terminals within r")
    fraud: FraudSpec = FraudSpec()
    feed: FeedSpec = FeedSpec()

    @model_validator(mode="after")
    def _populations_fit(self) -> WorldSpec:
        if self.fraud.compromised_terminals_per_day > self.n_terminals:
            raise ValueError(
                f"{self.fraud.compromised_terminals_per_day} terminals compromised per day "
                f"but only {self.n_terminals} terminals exist"
            )
        if self.fraud.compromised_customers_per_day > self.n_customers:
            raise ValueError(
                f"{self.fraud.compromised_customers_per_day} customers compromised per day "
                f"but only {self.n_customers} customers exist"
            )
        change = self.feed.schema_change_day
        if change is not None and change >= self.n_days:
            raise ValueError(f"schema_change_day {change} is outside the {self.n_days}-day world")
        return self

    @property
    def last_day(self) -> date:
        return self.start_date + timedelta(days=self.n_days - 1)

    @property
    def schema_change_day(self) -> int:
        change = self.feed.schema_change_day
        return self.n_days // 2 if change is None else change

    def fingerprint(self) -> str:
        """A short content hash: a world on disk is reused only when it matches."""
        content = f"{OUTPUT_VERSION}:{self.model_dump_json()}"
        return hashlib.sha256(content.encode()).hexdigest()[:16]
