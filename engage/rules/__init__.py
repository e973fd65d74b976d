"""The segment rule language, shared by every service that decides by it: segments (membership)
and the scheduler (journey triggers). `language` holds the rules and the value rules they follow,
`proto` reads them from the contracts, `evaluate` applies one to a profile's facts in Python and
`paths` reads a dotted path out of traits or properties."""
