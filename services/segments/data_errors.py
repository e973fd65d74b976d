"""Which database errors are about the data rather than the database: a value it cannot store,
cast or parse (SQLSTATE class 22, `DataError`) or a constraint the data violates (class 23,
`IntegrityError`). Drivers report them differently (asyncpg's adapter raises a bare `DBAPIError`
carrying the SQLSTATE), so both the exception class and the SQLSTATE are read.
"""

from sqlalchemy import exc

_DATA_EXCEPTION = "22"
_INTEGRITY_VIOLATION = "23"


def sqlstate(error: exc.DBAPIError) -> str:
    """The SQLSTATE a PostgreSQL driver reported ("" for SQLite and unknown errors)."""
    cause = error.orig
    return str(getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or "")


def refused_value(error: BaseException) -> bool:
    """The database could not store, cast or parse a value."""
    if not isinstance(error, exc.DBAPIError) or error.connection_invalidated:
        return False
    return isinstance(error, exc.DataError) or sqlstate(error).startswith(_DATA_EXCEPTION)


def violated_constraint(error: BaseException) -> bool:
    """The data broke a constraint (a key that exists, a missing reference)."""
    if not isinstance(error, exc.DBAPIError) or error.connection_invalidated:
        return False
    return isinstance(error, exc.IntegrityError) or sqlstate(error).startswith(_INTEGRITY_VIOLATION)
