"""The base model every schema of the service derives from."""

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Shared configuration for request and response schemas.

    ``defer_build`` postpones building each model's validator until it is first used, so
    importing a domain with dozens of schemas stays cheap; the lazy router relies on it.
    """

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        populate_by_name=True,
    )
