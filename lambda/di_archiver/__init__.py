"""di-archiver: exactly-once, long-term archive of JumpCloud Directory Insights events.

Value objects on the archive path are ``msgspec.Struct`` classes, not dataclasses: a dataclass
compiles its generated methods when its module is imported (about 1.5 ms each, paid on every
Lambda cold start), a Struct's are built in C. They keep the fields, init, repr, equality,
hashing and immutability a dataclass has; ``msgspec.structs.replace`` replaces
``dataclasses.replace``. Dataclasses stay where ``dataclasses.fields`` or ``replace`` is part of
their use (the settings, ``EngineConfig``) and where a value is a secret kept out of the repr
(the credentials and the access token), so their reviewed secret handling is unchanged.
"""

__version__ = "0.1.0"
