"""Errors that tell the user what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A configuration value is invalid.

    The message names the key, the bad value and the allowed values.
    """

    def __init__(self, key: str, value: object, allowed: str, hint: str = "") -> None:
        message = f"Invalid value for '{key}': {value!r}. Allowed: {allowed}."
        if hint:
            message += f" {hint}"
        super().__init__(message)
        self.key = key
        self.value = value


class DataError(ValueError):
    """A dataset does not match what its task expects (missing column, bad shape)."""
