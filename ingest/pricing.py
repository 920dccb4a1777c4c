"""Model prices and the cost of one API call.

The built-in table is ``prices.json`` next to this module (USD per million tokens).  A
user override file has the same shape, JSON or TOML::

    [models.claude-sonnet-5]
    input = 2
    output = 10

Its entries replace built-in entries of the same name.  Cache prices left out are
derived from ``input``: 5-minute writes 1.25x, 1-hour writes 2x, reads 0.1x.

A model is found by (FORMAT.md section 4): the exact name; the name lower-cased with
``.`` and ``@`` turned into ``-``; without a provider prefix (``anthropic/``,
``us.anthropic.``, ...), a ``-v1:0`` or ``[1m]`` tail and a ``-YYYYMMDD`` date; then the
longest table name the model name ends with.  A model that matches nothing has no price:
its calls get a NULL cost, never $0.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from .digest import sha1

PRICES_FILE = Path(__file__).with_name("prices.json")
BUCKETS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
DERIVED = {"cache_write_5m": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1}
DEFAULT_THRESHOLD = 200_000

_PROVIDER_PREFIX = re.compile(r"^(?:[a-z0-9_-]+/)+|^(?:[a-z]{2,4}\.)?anthropic\.")
_TAIL = re.compile(r"(?:-v\d+(?::\d+)?|\[[^\]]*\])$")
_DATE = re.compile(r"-\d{8}$")


class PricingError(ValueError):
    """A price file that cannot be used; the message is one sentence for the user."""


class _Frozen:
    """A value object like a frozen dataclass (same repr, equality and hash), written
    out: making the dataclasses cost every process that prices a call about 2 ms, which
    the status line pays on each message.  repr() must stay the dataclass's, since
    PriceTable.fingerprint() hashes it and a changed fingerprint re-prices every call."""

    __slots__ = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r}")

    __delattr__ = __setattr__


class Rates(_Frozen):
    """USD per million tokens for each token bucket."""

    __slots__ = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")

    def __init__(
        self,
        input: float,
        output: float,
        cache_write_5m: float,
        cache_write_1h: float,
        cache_read: float,
    ):
        init = object.__setattr__
        init(self, "input", input)
        init(self, "output", output)
        init(self, "cache_write_5m", cache_write_5m)
        init(self, "cache_write_1h", cache_write_1h)
        init(self, "cache_read", cache_read)

    def of(self, bucket: str) -> float:
        return getattr(self, bucket)


class Price(_Frozen):
    __slots__ = ("rates", "above_200k", "fast_multiplier")

    def __init__(self, rates: Rates, above_200k: Rates | None = None, fast_multiplier=1.0):
        init = object.__setattr__
        init(self, "rates", rates)
        init(self, "above_200k", above_200k)
        init(self, "fast_multiplier", fast_multiplier)


def _rates(entry: dict, where: str) -> Rates:
    values = {}
    for bucket in ("input", "output"):
        values[bucket] = _number(entry.get(bucket), f"{where}.{bucket}")
    for bucket, factor in DERIVED.items():
        value = entry.get(bucket)
        values[bucket] = (
            values["input"] * factor if value is None else _number(value, f"{where}.{bucket}")
        )
    return Rates(**values)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PricingError(
            f"Price {where} must be a number of USD per million tokens, not {value!r}."
        )
    return float(value)


def parse_models(data, source: str) -> dict[str, Price]:
    """The ``models`` mapping of a parsed price file as Price objects."""
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise PricingError(f"{source} has no 'models' table of model name -> prices.")
    prices = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise PricingError(f"{source}: the prices of {name} must be a table.")
        tier = entry.get("above_200k")
        if tier is not None and not isinstance(tier, dict):
            raise PricingError(f"{source}: {name}.above_200k must be a table.")
        multiplier = entry.get("fast_multiplier", 1)
        prices[name] = Price(
            rates=_rates(entry, f"{name}"),
            above_200k=_rates(tier, f"{name}.above_200k") if tier else None,
            fast_multiplier=_number(multiplier, f"{name}.fast_multiplier"),
        )
    return prices


def read_price_file(path: str | Path) -> dict:
    """Parse a JSON or TOML price file (by extension; JSON otherwise)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise PricingError(f"Price file {path} does not exist.") from None
    except OSError as e:
        raise PricingError(f"Cannot read price file {path}: {e.strerror}.") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib  # (lazy: its import costs the status line ~10 ms)

            data = tomllib.loads(text.decode("utf-8"))
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise PricingError(f"Price file {path} is not valid {kind}: {e}.") from None
    parse_models(data, str(path))  # validate now, with the file name in the message
    return data


class PriceTable:
    """Built-in prices, optionally overlaid with user overrides."""

    def __init__(self, models: dict[str, Price], threshold: int = DEFAULT_THRESHOLD):
        self.models = models
        self.threshold = threshold
        self._keys = sorted(models, key=len, reverse=True)
        self._cache: dict[str | None, Price | None] = {}
        self._fingerprint: str | None = None

    @classmethod
    def load(cls, overrides: dict | None = None) -> PriceTable:
        """The built-in table, with the ``models`` of an override file's data on top."""
        builtin = _builtin_data()
        models = parse_models(builtin, PRICES_FILE.name)
        threshold = int(builtin.get("tier_threshold", DEFAULT_THRESHOLD))
        if overrides:
            models.update(parse_models(overrides, "price overrides"))
            threshold = int(overrides.get("tier_threshold", threshold))
        return cls(models, threshold)

    def fingerprint(self) -> str:
        """Changes whenever any price changes (used to re-price stored calls)."""
        if self._fingerprint is None:
            blob = repr((self.threshold, sorted(self.models.items())))
            self._fingerprint = sha1(blob.encode()).hexdigest()
        return self._fingerprint

    def lookup(self, model: str | None) -> Price | None:
        if model not in self._cache:
            self._cache[model] = self._find(model)
        return self._cache[model]

    def _find(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.models:
            return self.models[model]
        name = model.lower().replace(".", "-").replace("@", "-")
        # Provider prefixes use '.' or '/', so strip them from the raw lower-cased name.
        raw = _TAIL.sub("", _PROVIDER_PREFIX.sub("", model.lower()))
        for candidate in (name, raw.replace(".", "-").replace("@", "-")):
            for form in (candidate, _DATE.sub("", candidate)):
                if form in self.models:
                    return self.models[form]
        base = _DATE.sub("", raw.replace(".", "-").replace("@", "-"))
        for key in self._keys:
            if base.endswith(key) and (len(base) == len(key) or base[-len(key) - 1] in "-/."):
                return self.models[key]
        return None

    def cost(
        self,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_write_5m: int,
        cache_write_1h: int,
        cache_read: int,
        speed: str | None = None,
    ) -> float | None:
        """USD for one call, or None when the model has no price.

        Like ccusage, the long-context rate applies to the tokens above the threshold in
        each bucket of the call separately.
        """
        price = self.lookup(model)
        if price is None:
            return None
        counts = (input_tokens, output_tokens, cache_write_5m, cache_write_1h, cache_read)
        total = 0.0
        for bucket, count in zip(BUCKETS, counts, strict=True):
            if not count:
                continue
            rate = price.rates.of(bucket)
            if price.above_200k is not None and count > self.threshold:
                high = price.above_200k.of(bucket)
                total += self.threshold * rate + (count - self.threshold) * high
            else:
                total += count * rate
        total /= 1_000_000
        if speed == "fast":
            total *= price.fast_multiplier
        return total


@lru_cache(maxsize=1)
def _builtin_data() -> dict:
    return json.loads(PRICES_FILE.read_text())


@lru_cache(maxsize=8)
def table_for(overrides_json: str | None) -> PriceTable:
    """A PriceTable for overrides given as a JSON string (cached; used per sync batch)."""
    return PriceTable.load(json.loads(overrides_json) if overrides_json else None)
