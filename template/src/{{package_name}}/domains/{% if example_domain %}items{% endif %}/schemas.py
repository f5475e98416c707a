from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from ...models import ApiModel

# Text the database can store (PostgreSQL refuses NUL characters), with no ASCII whitespace
# around it: "Blue mug" and "Blue mug " would otherwise be two different names. Spelled
# out rather than \s, which means different characters to different regex engines.
_TEXT = r"^[^\x00\x09-\x0d\x20]([^\x00]*[^\x00\x09-\x0d\x20])?$"
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=_TEXT, examples=["Blue mug"])]
Tag = Annotated[str, Field(min_length=1, max_length=50, pattern=_TEXT)]

# A price is a decimal string, never a JSON number (a binary float cannot hold 0.10): up to
# 8 digits before the point and 2 after it. The published pattern is the whole rule, so a
# client (or a fuzzer) reading the schema knows exactly which strings are accepted; pydantic
# would publish a Decimal as any string or number, digit limits left out. Prices are stored
# as whole cents and answered canonically, with two decimals.
PRICE_PATTERN = r"^(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?$"
_PRICE = re.compile(PRICE_PATTERN.removeprefix("^").removesuffix("$"))
_CENT = Decimal("0.01")


def _parse_price(value: object) -> Decimal:
    # A Decimal comes from the service's own code (a stored price), a str from a request.
    text = format(value, "f") if isinstance(value, Decimal) else value
    if not isinstance(text, str) or not _PRICE.fullmatch(text):
        message = 'Price should be a string such as "12.50": up to 8 digits, then up to 2 decimals'
        raise PydanticCustomError("price", message)
    return Decimal(text).quantize(_CENT)


Price = Annotated[
    Decimal,
    PlainValidator(_parse_price),
    PlainSerializer(lambda price: f"{price:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": PRICE_PATTERN, "maxLength": 11, "examples": ["12.50"]}),
]


class ItemCreate(ApiModel):
    name: Name
    price: Price
    tags: list[Tag] = Field(default_factory=list, max_length=10)


class ItemUpdate(ApiModel):
    name: Name | None = None
    price: Price | None = None
    tags: list[Tag] | None = Field(default=None, max_length=10)


class Item(ItemCreate):
    id: int


class ItemPage(ApiModel):
    items: list[Item]
    total: int
    limit: int
    offset: int
