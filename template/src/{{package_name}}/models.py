"""The base model every schema of the service derives from."""

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Unknown members an object may carry before it is refused as a whole: each would be one
# error of its own, and a 1 MiB body holds a hundred thousand of them.
MAX_UNKNOWN_MEMBERS = 20


class ApiModel(BaseModel):
    """Shared configuration for request and response schemas.

    ``defer_build`` postpones building each model's validator until it is first used, so
    importing a domain with dozens of schemas stays cheap; the lazy router relies on it.
    """

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        # No str_strip_whitespace: it trims before the length and pattern checks, so the
        # published schema would no longer say which strings are accepted.
        populate_by_name=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_floods_of_members(cls, data: Any) -> Any:
        # Counted before validation: the cost of refusing such a body does not grow with it.
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + MAX_UNKNOWN_MEMBERS:
            raise ValueError(f"has {len(data)} members; {cls.__name__} has {len(cls.model_fields)} fields")
        return data
